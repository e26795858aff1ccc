import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getJobSummary, loadJobForLease } from "../../worker/domain/jobs";
import { api, token } from "./helpers";
import { b64, KEY_TEXT, PLAYBOOK, playbookJob, repoJob } from "./jobs-fixtures";

const ALIAS = "happy";
const auth = () => token([ALIAS], "user");

async function create(body: unknown, query = "") {
  const r = await api("POST", `/jobs/${ALIAS}${query}`, { token: await auth(), body });
  expect(r.status, r.text).toBe(200);
  return r.json;
}

describe("jobs (happy)", () => {
  it("creates a playbook job and answers it with defaults, links and times", async () => {
    const before = Date.now();
    const job = await create(playbookJob({ description: "d", callbacks: [{ url: "https://hooks.example.com/x" }], properties: { a: 1 } }));
    expect(job).toMatchObject({
      accountAlias: ALIAS,
      name: "deploy",
      description: "d",
      executionTtl: 180,
      callbacks: [{ url: "https://hooks.example.com/x", level: "DEBUG" }],
      playbook: PLAYBOOK,
      repository: null,
      playbookTags: [],
      hosts: [{ id: "web1", hostVars: { ansible_host: "10.0.0.1" }, hasSshPrivateKey: false }],
      properties: { a: 1 },
      hasSshPrivateKey: false,
      useDynamicInventory: false,
      location: null,
      forks: null,
      status: "ACTIVE",
    });
    expect(job.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(job.createdTime).toBeGreaterThanOrEqual(before - 1000);
    expect(job.lastUpdatedTime).toBe(job.createdTime);
    expect(job.links).toEqual({
      self: `/jobs/${ALIAS}/${job.id}`,
      executions: `/jobs/${ALIAS}/${job.id}/executions`,
      start: `/jobs/${ALIAS}/${job.id}/start`,
      schedules: `/jobs/${ALIAS}/${job.id}/schedules`,
    });
    const got = await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: await token([ALIAS], "viewer") });
    expect(got.status).toBe(200);
    expect(got.json).toEqual(job);
  });

  it("creates a repository job with credentials shown only as flags", async () => {
    const job = await create(
      repoJob({
        repository: {
          url: "git@github.com:ops/site.git",
          defaultPlaybook: "play/site.yml",
          credentials: { username: "bot", password: "pw-123", sshPrivateKey: b64(KEY_TEXT) },
        },
        executionTtl: 5,
        playbookTags: ["deploy", "db"],
        location: "dc1",
        sshPrivateKey: b64(KEY_TEXT),
      }),
    );
    expect(job.playbook).toBeNull();
    expect(job.repository).toEqual({
      url: "git@github.com:ops/site.git",
      branch: null,
      defaultPlaybook: "play/site.yml",
      credentials: { username: "bot", hasPassword: true, hasSshPrivateKey: true },
    });
    expect(job).toMatchObject({ executionTtl: 5, playbookTags: ["deploy", "db"], location: "dc1", hasSshPrivateKey: true });
  });

  it("accepts every URL form for a repository and a raw PEM key", async () => {
    for (const url of ["https://h.example/r.git", "http://h.example/r.git", "ssh://git@h.example:22/r.git", "git://h.example/r", "git@h.example:o/r.git"]) {
      const job = await create(repoJob({ repository: { url, defaultPlaybook: "site.yml" }, sshPrivateKey: KEY_TEXT }));
      expect(job.repository.url).toBe(url);
      expect(job.hasSshPrivateKey).toBe(true);
    }
  });

  it("ignores unknown fields and accepts dynamic inventory without hosts", async () => {
    const job = await create({ playbook: PLAYBOOK, useDynamicInventory: true, somethingElse: { x: 1 }, id: "mine", status: "GONE" });
    expect(job.useDynamicInventory).toBe(true);
    expect(job.hosts).toEqual([]);
    expect(job.id).not.toBe("mine");
    expect(job.status).toBe("ACTIVE");
    expect(job).not.toHaveProperty("somethingElse");
  });

  it("accepts a loopback http callback when ALLOW_LOOPBACK_HTTP is on (tests)", async () => {
    const job = await create(
      playbookJob({
        callbacks: [
          { url: "http://127.0.0.1:9999/hook", level: "RESULT" },
          { url: "http://localhost/x", level: "ERROR" },
        ],
      }),
    );
    expect(job.callbacks).toEqual([
      { url: "http://127.0.0.1:9999/hook", level: "RESULT" },
      { url: "http://localhost/x", level: "ERROR" },
    ]);
  });

  it("replaces with what GET answered (read-only fields ignored) and keeps omitted secrets", async () => {
    const job = await create(
      playbookJob({
        sshPrivateKey: b64("JOBKEY"),
        hosts: [{ id: "a", sshPrivateKey: b64("KEY-A") }, { id: "b", sshPrivateKey: b64("KEY-B") }, { id: "c" }],
      }),
    );
    const got = (await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: await auth() })).json;
    // The client changes one thing and PUTs the whole answer back, `has…` flags, links and all.
    got.name = "renamed";
    got.hosts.reverse();
    const put = await api("PUT", `/jobs/${ALIAS}/${job.id}`, { token: await auth(), body: got });
    expect(put.status, put.text).toBe(200);
    expect(put.json).toMatchObject({ id: job.id, name: "renamed", createdTime: job.createdTime, hasSshPrivateKey: true });
    expect(put.json.lastUpdatedTime).toBeGreaterThanOrEqual(job.lastUpdatedTime);
    expect(put.json.hosts.map((h: { id: string; hasSshPrivateKey: boolean }) => [h.id, h.hasSshPrivateKey])).toEqual([
      ["c", false],
      ["b", true],
      ["a", true],
    ]);
    const lease = await loadJobForLease(env, ALIAS, job.id);
    expect(lease?.sshPrivateKey).toBe(b64("JOBKEY"));
    expect(lease?.hosts.map((h) => [h.id, h.sshPrivateKey])).toEqual([
      ["c", null],
      ["b", b64("KEY-B")],
      ["a", b64("KEY-A")],
    ]);
  });

  it("removes a secret only on an explicit null, and new values replace old ones", async () => {
    const job = await create(
      repoJob({
        sshPrivateKey: b64("JOBKEY"),
        repository: { url: "https://h.example/r.git", defaultPlaybook: "s.yml", credentials: { username: "u", password: "p1", sshPrivateKey: b64("REPOKEY") } },
        hosts: [
          { id: "a", sshPrivateKey: b64("KEY-A") },
          { id: "b", sshPrivateKey: b64("KEY-B") },
        ],
      }),
    );
    const body = {
      sshPrivateKey: null,
      repository: { url: "https://h.example/r.git", defaultPlaybook: "s.yml", credentials: { username: "u", password: "p2" } },
      hosts: [{ id: "a", sshPrivateKey: null }, { id: "b" }, { id: "new" }],
    };
    const put = await api("PUT", `/jobs/${ALIAS}/${job.id}`, { token: await auth(), body });
    expect(put.status, put.text).toBe(200);
    expect(put.json.hasSshPrivateKey).toBe(false);
    expect(put.json.repository.credentials).toEqual({ username: "u", hasPassword: true, hasSshPrivateKey: true });
    const lease = await loadJobForLease(env, ALIAS, job.id);
    expect(lease?.sshPrivateKey).toBeNull();
    expect(lease?.repository?.credentials).toEqual({ username: "u", password: "p2", sshPrivateKey: b64("REPOKEY") });
    expect(lease?.hosts.map((h) => [h.id, h.sshPrivateKey])).toEqual([
      ["a", null],
      ["b", b64("KEY-B")],
      ["new", null],
    ]);

    // `credentials: null` removes them all; switching to a playbook drops the repository's secrets.
    const put2 = await api("PUT", `/jobs/${ALIAS}/${job.id}`, {
      token: await auth(),
      body: { repository: { url: "https://h.example/r.git", defaultPlaybook: "s.yml", credentials: null }, hosts: [{ id: "b" }] },
    });
    expect(put2.json.repository.credentials).toBeNull();
    expect((await loadJobForLease(env, ALIAS, job.id))?.repository?.credentials).toBeNull();
  });

  it("treats repository: {} and name: null as absent on PUT", async () => {
    const job = await create(playbookJob());
    const put = await api("PUT", `/jobs/${ALIAS}/${job.id}`, {
      token: await auth(),
      body: { name: null, repository: {}, playbook: PLAYBOOK, hosts: [{ id: "x" }] },
    });
    expect(put.status, put.text).toBe(200);
    expect(put.json).toMatchObject({ name: null, repository: null, playbook: PLAYBOOK, hosts: [{ id: "x", hostVars: {}, hasSshPrivateKey: false }] });
  });

  it("deletes a job (204), after which it is gone", async () => {
    const job = await create(playbookJob());
    const del = await api("DELETE", `/jobs/${ALIAS}/${job.id}`, { token: await auth() });
    expect(del.status).toBe(204);
    expect(del.text).toBe("");
    expect((await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: await auth() })).status).toBe(404);
    expect((await api("DELETE", `/jobs/${ALIAS}/${job.id}`, { token: await auth() })).status).toBe(404);
    expect(await loadJobForLease(env, ALIAS, job.id)).toBeNull();
  });

  it("refuses to delete while an execution is active (409), and deletes once it ended", async () => {
    const job = await create(playbookJob());
    const now = Date.now();
    await env.DB.prepare("INSERT INTO executions (id, account_alias, job_id, status, created_time, updated_time) VALUES (?, ?, ?, 'RUNNING', ?, ?)")
      .bind(`ex-${job.id}`, ALIAS, job.id, now, now)
      .run();
    const del = await api("DELETE", `/jobs/${ALIAS}/${job.id}`, { token: await auth() });
    expect(del.status).toBe(409);
    expect(del.headers.get("content-type")).toContain("application/problem+json");
    expect((await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: await auth() })).status).toBe(200);
    await env.DB.prepare("UPDATE executions SET status = 'SUCCESS' WHERE id = ?").bind(`ex-${job.id}`).run();
    expect((await api("DELETE", `/jobs/${ALIAS}/${job.id}`, { token: await auth() })).status).toBe(204);
  });

  it("with immediate=true hands the new job to the executions side", async () => {
    const before = (await api("GET", `/jobs/${ALIAS}?size=1`, { token: await auth() })).json.totalSize;
    const r = await api("POST", `/jobs/${ALIAS}?immediate=true`, { token: await auth(), body: playbookJob() });
    if (r.status === 200) {
      expect(r.json.execution).toBeTruthy();
      expect(r.json.execution.status).toBe("PENDING");
      expect(r.json.execution.job_id).toBe(r.json.id);
    } else {
      // Until executions land, startExecution answers 501; the job itself is stored either way.
      expect(r.status).toBe(501);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
    }
    expect((await api("GET", `/jobs/${ALIAS}?size=1`, { token: await auth() })).json.totalSize).toBe(before + 1);
  });

  it("gives the executions side a summary and a lease view", async () => {
    const job = await create(
      playbookJob({
        location: "dc9",
        hosts: [
          { id: "a", hostVars: { rnr_location: "dc1" } },
          { id: "b", hostVars: { rnr_location: "dc1" } },
          { id: "c", hostVars: { rnr_location: "dc2" } },
        ],
        callbacks: [{ url: "https://h.example/cb", level: "ERROR" }],
        executionTtl: 30,
        properties: { v: [1, 2] },
        playbookTags: ["t"],
      }),
    );
    expect(await getJobSummary(env, ALIAS, job.id)).toEqual({
      id: job.id,
      executionTtl: 30,
      location: "dc9",
      hostLocations: ["dc1", "dc2"],
      callbacks: [{ url: "https://h.example/cb", level: "ERROR" }],
    });
    expect(await getJobSummary(env, "other", job.id)).toBeNull();
    const lease = await loadJobForLease(env, ALIAS, job.id);
    expect(lease).toMatchObject({ name: "deploy", executionTtl: 30, playbook: PLAYBOOK, properties: { v: [1, 2] }, playbookTags: ["t"], location: "dc9" });
    expect(lease).not.toHaveProperty("repository");
    expect(await loadJobForLease(env, "other", job.id)).toBeNull();
  });
});

describe("forks (happy)", () => {
  it("stores and answers a job's forks; a PUT without them goes back to Ansible's default, like any optional field", async () => {
    const job = await create(playbookJob({ forks: 50 }));
    expect(job.forks).toBe(50);
    expect((await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: await auth() })).json.forks).toBe(50);
    expect(await loadJobForLease(env, ALIAS, job.id)).toMatchObject({ forks: 50 });

    // What was read, PUT back: kept.
    const got = (await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: await auth() })).json;
    const kept = await api("PUT", `/jobs/${ALIAS}/${job.id}`, { token: await auth(), body: { ...got, forks: 500 } });
    expect(kept.status, kept.text).toBe(200);
    expect(kept.json.forks).toBe(500);
    // A PUT is the whole definition: omitted (or null) is the default, as with location or executionTtl.
    const omitted = await api("PUT", `/jobs/${ALIAS}/${job.id}`, { token: await auth(), body: playbookJob({ location: "dc1" }) });
    expect(omitted.status, omitted.text).toBe(200);
    expect(omitted.json).toMatchObject({ forks: null, location: "dc1" });
    expect(await loadJobForLease(env, ALIAS, job.id)).not.toHaveProperty("forks");
    const nulled = await api("PUT", `/jobs/${ALIAS}/${job.id}`, { token: await auth(), body: playbookJob({ forks: null }) });
    expect(nulled.json.forks).toBeNull();
  });

  it("answers forks: null for a job stored before the field existed", async () => {
    const job = await create(playbookJob());
    const row = await env.DB.prepare("SELECT definition FROM jobs WHERE id = ?").bind(job.id).first<{ definition: string }>();
    const old = JSON.parse(row!.definition);
    delete old.forks;
    await env.DB.prepare("UPDATE jobs SET definition = ? WHERE id = ?").bind(JSON.stringify(old), job.id).run();
    const got = await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: await auth() });
    expect(got.json.forks).toBeNull();
    expect(await loadJobForLease(env, ALIAS, job.id)).not.toHaveProperty("forks");
  });
});

describe("job lists (happy)", () => {
  const LIST = "lister";
  it("pages newest first with all four fields, and walks one by one", async () => {
    const t = await token([LIST], "user");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await api("POST", `/jobs/${LIST}`, { token: t, body: playbookJob({ name: `job ${i}` }) });
      ids.push(r.json.id);
    }
    const all = await api("GET", `/jobs/${LIST}`, { token: t });
    expect(all.status).toBe(200);
    expect(Object.keys(all.json).sort()).toEqual(["page", "results", "size", "totalSize"]);
    expect(all.json).toMatchObject({ totalSize: 5, page: 0, size: 100 });
    expect(all.json.results.map((j: { id: string }) => j.id)).toEqual([...ids].reverse());

    const walked: string[] = [];
    for (let page = 0; page < 5; page++) {
      const r = await api("GET", `/jobs/${LIST}?page=${page}&size=1`, { token: t });
      expect(r.json).toMatchObject({ totalSize: 5, page, size: 1 });
      expect(r.json.results).toHaveLength(1);
      walked.push(r.json.results[0].id);
    }
    expect(walked).toEqual([...ids].reverse());

    const second = await api("GET", `/jobs/${LIST}?page=1&size=2`, { token: t });
    expect(second.json.results.map((j: { id: string }) => j.id)).toEqual([ids[2], ids[1]]);
    const beyond = await api("GET", `/jobs/${LIST}?page=7&size=2`, { token: t });
    expect(beyond.status).toBe(200);
    expect(beyond.json).toEqual({ totalSize: 5, page: 7, size: 2, results: [] });
  });

  it("answers an empty account with an empty page", async () => {
    const r = await api("GET", "/jobs/nobody-here", { token: await token(["nobody-here"], "viewer") });
    expect(r.json).toEqual({ totalSize: 0, page: 0, size: 100, results: [] });
  });
});

describe("openapi (jobs)", () => {
  it("lists the jobs routes with their schemas", async () => {
    const doc = (await api("GET", "/openapi.json", { token: null })).json;
    expect(Object.keys(doc.paths["/jobs/{alias}"]).sort()).toEqual(expect.arrayContaining(["get", "post"]));
    expect(Object.keys(doc.paths["/jobs/{alias}/{jobId}"]).sort()).toEqual(expect.arrayContaining(["delete", "get", "put"]));
    const post = doc.paths["/jobs/{alias}"].post;
    expect(post.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/JobInput");
    expect(post.responses["200"].content["application/json"].schema.$ref).toBe("#/components/schemas/JobWithExecution");
    expect(doc.paths["/jobs/{alias}/{jobId}"].put.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/JobReplace");
    expect(doc.paths["/jobs/{alias}"].get.responses["200"].content["application/json"].schema.$ref).toBe("#/components/schemas/JobPage");
    expect(doc.paths["/jobs/{alias}"].get.parameters.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(["alias", "page", "size"]));
    const jobSchema = doc.components.schemas.Job;
    expect(jobSchema.properties).toHaveProperty("hasSshPrivateKey");
    expect(jobSchema.properties).not.toHaveProperty("sshPrivateKey");
    expect(doc.components.schemas.JobInput.properties).toHaveProperty("sshPrivateKey");
  });
});
