import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { executionClient } from "../../worker/domain/execution-client";
import { api, token } from "./helpers";
import { executionIn, newJob, stub } from "./execution-fixtures";
import { playbookJob, repoJob } from "./jobs-fixtures";

/**
 * Inputs that reach the agent are made safe where they are saved (jobs, inventory) and where they
 * are started (start and restart overrides): each bad value is a 400 naming its field, and nothing
 * stored changes. Table-driven: every rule is tried on every place it applies to.
 */
const ALIAS = "inputs";
let admin: string;
let viewer: string;

/** The fields named (once each: one field may break two rules, e.g. a tab is whitespace and a control character). */
const fields = (r: { json: any }) => [...new Set(((r.json?.errors ?? []) as { field: string }[]).map((e) => e.field))];
const messageOf = (r: { json: any }, field: string) => (r.json.errors as { field: string; message: string }[]).find((e) => e.field === field)?.message ?? "";

/** Host ids Ansible would expand, read as a group, or that break its inventory and --limit. */
const BAD_HOST_IDS: [string, string][] = [
  ["a numeric range", "web[0:299999]"],
  ["a letter range", "db[a:f]"],
  ["a stride range", "web[0:10:2]"],
  ["a bracket alone", "web]1"],
  ["all", "all"],
  ["ungrouped", "ungrouped"],
  ["a NUL", "web\u00001"],
  ["a bell", "web\u00071"],
  ["an escape sequence", "web\u001b[31m"],
  ["a DEL", "web\u007f"],
  ["a space", "web 1"],
  ["a tab", "web\t1"],
  ["a newline", "web1\nweb2"],
  ["a comma", "web1,web2"],
  ["empty", ""],
];

/** Repository URLs that carry credentials (an ssh user alone is not one). */
const CREDENTIALED_URLS: [string, string][] = [
  ["https user and password", "https://bob:hunter2@git.example.com/ops/site.git"],
  ["https user only (a token)", "https://ghp_0123456789abcdef@github.com/ops/site.git"],
  ["https empty user, password", "https://:hunter2@git.example.com/ops/site.git"],
  ["http user and password", "http://bob:hunter2@git.example.com/ops/site.git"],
  ["percent-encoded user", "https://bob%40corp:hunter2@git.example.com/ops/site.git"],
  ["ssh with a password", "ssh://git:hunter2@git.example.com/ops/site.git"],
  ["git:// with a user", "git://bob:hunter2@git.example.com/ops/site.git"],
];

/** Tags that would split into others on ansible-playbook's command line. */
const BAD_TAGS: [string, string][] = [
  ["a comma", "deploy,db"],
  ["a space", "deploy db"],
  ["a tab", "deploy\tdb"],
  ["a newline", "deploy\ndb"],
  ["empty", ""],
];

/** Three good hosts, then `id` at index 3 (so the 400 must name `hosts.3.id`). */
const hostsWith = (id: string) => [{ id: "web1" }, { id: "web2" }, { id: "web3" }, { id }];

beforeAll(async () => {
  admin = await token([ALIAS], "admin");
  viewer = await token([ALIAS], "viewer");
});

async function jobCount(): Promise<number> {
  return (await api("GET", `/jobs/${ALIAS}`, { token: admin })).json.totalSize;
}

describe("jobs: create and replace refuse unsafe inputs (400 naming the field), storing nothing", () => {
  let jobId: string;
  let stored: unknown;
  beforeAll(async () => {
    jobId = await newJob(ALIAS, { hosts: hostsWith("web4"), playbookTags: ["deploy"] });
    stored = (await api("GET", `/jobs/${ALIAS}/${jobId}`, { token: admin })).json;
  });

  const cases: [string, Record<string, unknown>, string, RegExp?][] = [
    ...BAD_HOST_IDS.map(([what, id]): [string, Record<string, unknown>, string] => [
      `host id with ${what}`,
      playbookJob({ hosts: hostsWith(id) }),
      "hosts.3.id",
    ]),
    ...CREDENTIALED_URLS.map(([what, url]): [string, Record<string, unknown>, string, RegExp] => [
      `repository.url with ${what}`,
      repoJob({ repository: { url, defaultPlaybook: "site.yml" } }),
      "repository.url",
      /repository\.credentials/,
    ]),
    ...BAD_TAGS.map(([what, tag]): [string, Record<string, unknown>, string] => [
      `playbook tag with ${what}`,
      playbookJob({ playbookTags: ["ok", tag] }),
      "playbookTags.1",
    ]),
  ];

  it.each(cases)("%s", async (_what, body, field, message) => {
    const before = await jobCount();
    const created = await api("POST", `/jobs/${ALIAS}`, { token: admin, body });
    expect(created.status, created.text).toBe(400);
    expect(fields(created)).toContain(field);
    if (message) expect(messageOf(created, field)).toMatch(message);
    // A refusal never echoes the value (it may be a secret).
    expect(created.text).not.toContain("hunter2");
    expect(await jobCount()).toBe(before);

    const replaced = await api("PUT", `/jobs/${ALIAS}/${jobId}`, { token: admin, body });
    expect(replaced.status).toBe(400);
    expect(fields(replaced)).toContain(field);
    expect((await api("GET", `/jobs/${ALIAS}/${jobId}`, { token: admin })).json).toEqual(stored);
  });

  it("accepts the look-alikes that are safe: ssh users, scp-like URLs, ordinary host ids and tags", async () => {
    for (const url of [
      "git@github.com:ops/site.git",
      "ssh://git@git.example.com/ops/site.git",
      "https://git.example.com/ops/site.git",
      "https://git.example.com/ops/a@b.git",
    ]) {
      const r = await api("POST", `/jobs/${ALIAS}`, { token: admin, body: repoJob({ repository: { url, defaultPlaybook: "site.yml" } }) });
      expect(r.status, `${url}: ${r.text}`).toBe(200);
      expect(r.json.repository.url).toBe(url);
    }
    const hosts = ["10.0.0.1", "fe80::1", "web-1.example.com", "all-web", "ALL", "db_ungrouped", "host:2222"].map((id) => ({ id }));
    const r = await api("POST", `/jobs/${ALIAS}`, { token: admin, body: playbookJob({ hosts, playbookTags: ["deploy", "db-setup", "v1.2"] }) });
    expect(r.status, r.text).toBe(200);
  });
});

describe("start and restart overrides follow the job's rules", () => {
  let jobId: string;
  const user = () => token([ALIAS], "user");
  const executionCount = async () => (await api("GET", `/jobs/${ALIAS}/${jobId}/executions`, { token: admin })).json.totalSize;
  beforeAll(async () => {
    jobId = await newJob(ALIAS, { hosts: hostsWith("web4") });
  });

  const cases: [string, Record<string, unknown>, string][] = [
    ...BAD_HOST_IDS.map(([what, id]): [string, Record<string, unknown>, string] => [
      `host id with ${what}`,
      { hosts: hostsWith(id).map((h) => ({ ...h, sshPrivateKey: btoa("KEY") })) },
      "hosts.3.id",
    ]),
    ["a repeated host id", { hosts: [...hostsWith("web4"), { id: "web2" }] }, "hosts.4.id"],
    ...BAD_TAGS.map(([what, tag]): [string, Record<string, unknown>, string] => [`playbook tag with ${what}`, { playbookTags: [tag] }, "playbookTags.0"]),
    ["a tag too long", { playbookTags: ["t".repeat(101)] }, "playbookTags.0"],
  ];

  it.each(cases)("start: %s", async (_what, body, field) => {
    const before = await executionCount();
    const r = await api("POST", `/jobs/${ALIAS}/${jobId}/start`, { token: await user(), body });
    expect(r.status, r.text).toBe(400);
    expect(fields(r)).toEqual([field]);
    expect(await executionCount()).toBe(before);
  });

  it.each(cases.filter(([, body]) => "hosts" in body))("restart: %s", async (_what, body, field) => {
    const id = await executionIn(ALIAS, jobId, "FAILURE");
    const before = await stub(id).view();
    const r = await api("POST", `/jobs/${ALIAS}/${jobId}/executions/${id}/restart`, { token: await user(), body });
    expect(r.status, r.text).toBe(400);
    expect(fields(r)).toEqual([field]);
    expect(await stub(id).view()).toEqual(before);
  });

  it("a clean override still starts, and reaches the lease", async () => {
    const id = (
      await api("POST", `/jobs/${ALIAS}/${jobId}/start`, {
        token: await user(),
        body: { playbookTags: ["deploy", "db"], hosts: [{ id: "web2", sshPrivateKey: btoa("KEY") }] },
      })
    ).json.execution_id;
    const lease = await stub(id).grantLease("agent-inputs");
    expect(lease!.job.playbookTags).toEqual(["deploy", "db"]);
  });
});

describe("inventory host ids follow the same rule", () => {
  it.each(BAD_HOST_IDS)("host id with %s", async (_what, id) => {
    const good = { hosts: hostsWith("web4").map((h) => ({ ...h, groups: ["web"], hostVars: {} })) };
    expect((await api("PUT", `/inventory/${ALIAS}`, { token: admin, body: good })).status).toBe(200);
    const r = await api("PUT", `/inventory/${ALIAS}`, { token: admin, body: { hosts: hostsWith(id) } });
    expect(r.status).toBe(400);
    expect(fields(r)).toEqual(["hosts.3.id"]);
    expect((await api("GET", `/inventory/${ALIAS}`, { token: admin })).json).toEqual(good);
  });
});

describe("a job stored with a credentialed URL before they were refused", () => {
  it("is still read (never showing the credentials), can be PUT back clean, and still runs", async () => {
    const created = await api("POST", `/jobs/${ALIAS}`, { token: admin, body: repoJob() });
    expect(created.status, created.text).toBe(200);
    const jobId = created.json.id as string;
    // As the row of an older version would hold it.
    await env.DB.prepare("UPDATE jobs SET definition = replace(definition, 'https://git.example.com', 'https://bob:hunter2@git.example.com') WHERE id = ?")
      .bind(jobId)
      .run();
    const read = await api("GET", `/jobs/${ALIAS}/${jobId}`, { token: viewer });
    expect(read.status).toBe(200);
    expect(read.json.repository.url).toBe("https://git.example.com/ops/site.git");
    const list = await api("GET", `/jobs/${ALIAS}?size=100`, { token: viewer });
    expect(list.text).toContain(jobId);
    for (const text of [read.text, list.text]) {
      expect(text).not.toContain("hunter2");
      expect(text).not.toContain("bob");
    }

    // The agent still gets the URL it was given (it moves the credentials out of it), and redacts the password.
    const id = (await api("POST", `/jobs/${ALIAS}/${jobId}/start`, { token: admin })).json.execution_id;
    const lease = await executionClient(env, id).grantLease("agent-legacy");
    expect(lease!.job.repository!.url).toBe("https://bob:hunter2@git.example.com/ops/site.git");
    expect(lease!.secrets).toContain("hunter2");

    // What a client read and PUTs back is valid, and stores the URL clean.
    const put = await api("PUT", `/jobs/${ALIAS}/${jobId}`, { token: admin, body: read.json });
    expect(put.status, put.text).toBe(200);
    const row = await env.DB.prepare("SELECT definition FROM jobs WHERE id = ?").bind(jobId).first<{ definition: string }>();
    expect(row!.definition).not.toContain("hunter2");
  });
});
