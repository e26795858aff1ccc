import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app";
import { api, token } from "./helpers";
import { b64, PLAYBOOK, playbookJob } from "./jobs-fixtures";

const ALIAS = "errs";
const auth = () => token([ALIAS], "user");

type Case = [label: string, body: unknown, fields: string[]];
const base = playbookJob();
const without = (k: string) => Object.fromEntries(Object.entries(base).filter(([key]) => key !== k));
const repo = (r: unknown) => ({ ...without("playbook"), repository: r });
const okRepo = { url: "https://h.example/r.git", defaultPlaybook: "site.yml" };
const nested = (n: number): unknown => (n === 0 ? 1 : { a: nested(n - 1) });

// Every validation rule, each with the field it must name (and only that field).
const CASES: Case[] = [
  ["name not text", { ...base, name: 5 }, ["name"]],
  ["name too long", { ...base, name: "x".repeat(201) }, ["name"]],
  ["description not text", { ...base, description: [] }, ["description"]],
  ["description too long", { ...base, description: "x".repeat(4001) }, ["description"]],
  ["executionTtl zero", { ...base, executionTtl: 0 }, ["executionTtl"]],
  ["executionTtl negative", { ...base, executionTtl: -5 }, ["executionTtl"]],
  ["executionTtl above 7 days", { ...base, executionTtl: 10081 }, ["executionTtl"]],
  ["executionTtl fractional", { ...base, executionTtl: 1.5 }, ["executionTtl"]],
  ["executionTtl as text", { ...base, executionTtl: "180" }, ["executionTtl"]],
  ["callbacks not a list", { ...base, callbacks: "https://h.example" }, ["callbacks"]],
  ["callback without url", { ...base, callbacks: [{}] }, ["callbacks.0.url"]],
  ["callback url not a url", { ...base, callbacks: [{ url: "not a url" }] }, ["callbacks.0.url"]],
  ["callback url ftp", { ...base, callbacks: [{ url: "ftp://h.example/x" }] }, ["callbacks.0.url"]],
  ["callback url relative", { ...base, callbacks: [{ url: "/hook" }] }, ["callbacks.0.url"]],
  ["callback http to a public host", { ...base, callbacks: [{ url: "https://ok.example" }, { url: "http://h.example/x" }] }, ["callbacks.1.url"]],
  ["callback bad level", { ...base, callbacks: [{ url: "https://ok.example", level: "INFO" }] }, ["callbacks.0.level"]],
  ["too many callbacks", { ...base, callbacks: Array.from({ length: 21 }, () => ({ url: "https://ok.example" })) }, ["callbacks"]],
  ["playbook not base64", { ...base, playbook: "!!not base64!!" }, ["playbook"]],
  ["playbook empty", { ...base, playbook: "" }, ["playbook"]],
  ["playbook blank once decoded", { ...base, playbook: b64("  \n\t") }, ["playbook"]],
  ["playbook not UTF-8", { ...base, playbook: btoa("\xff\xfe\xfd") }, ["playbook"]],
  ["playbook not text", { ...base, playbook: 5 }, ["playbook"]],
  ["neither playbook nor repository", without("playbook"), ["playbook"]],
  ["only an empty repository", repo({}), ["playbook"]],
  ["both playbook and repository", { ...base, repository: okRepo }, ["repository"]],
  ["repository not an object", repo("https://h.example/r.git"), ["repository"]],
  ["repository without url", repo({ defaultPlaybook: "site.yml" }), ["repository.url"]],
  ["repository without defaultPlaybook", repo({ url: okRepo.url }), ["repository.defaultPlaybook"]],
  ["repository file url", repo({ ...okRepo, url: "file:///etc/passwd" }), ["repository.url"]],
  ["repository url with an option", repo({ ...okRepo, url: "https://h.example/r.git --upload-pack=x" }), ["repository.url"]],
  ["repository url not text", repo({ ...okRepo, url: 5 }), ["repository.url"]],
  ["branch that looks like an option", repo({ ...okRepo, branch: "-x" }), ["repository.branch"]],
  ["branch with a space", repo({ ...okRepo, branch: "a b" }), ["repository.branch"]],
  ["branch empty", repo({ ...okRepo, branch: "" }), ["repository.branch"]],
  ["defaultPlaybook escaping the repository", repo({ ...okRepo, defaultPlaybook: "a/../../etc/passwd" }), ["repository.defaultPlaybook"]],
  ["defaultPlaybook absolute", repo({ ...okRepo, defaultPlaybook: "/etc/site.yml" }), ["repository.defaultPlaybook"]],
  ["defaultPlaybook empty", repo({ ...okRepo, defaultPlaybook: "" }), ["repository.defaultPlaybook"]],
  ["credentials not an object", repo({ ...okRepo, credentials: "u:p" }), ["repository.credentials"]],
  ["credentials password not text", repo({ ...okRepo, credentials: { password: 5 } }), ["repository.credentials.password"]],
  ["credentials password empty", repo({ ...okRepo, credentials: { password: "" } }), ["repository.credentials.password"]],
  ["credentials key not base64", repo({ ...okRepo, credentials: { sshPrivateKey: "%%%" } }), ["repository.credentials.sshPrivateKey"]],
  ["playbookTags not a list", { ...base, playbookTags: "deploy" }, ["playbookTags"]],
  ["playbookTag empty", { ...base, playbookTags: ["ok", ""] }, ["playbookTags.1"]],
  ["playbookTag with a comma", { ...base, playbookTags: ["a,b"] }, ["playbookTags.0"]],
  ["playbookTag not text", { ...base, playbookTags: [5] }, ["playbookTags.0"]],
  ["hosts missing", without("hosts"), ["hosts"]],
  ["hosts empty", { ...base, hosts: [] }, ["hosts"]],
  ["hosts not a list", { ...base, hosts: "web1" }, ["hosts"]],
  ["host not an object", { ...base, hosts: [{ id: "a" }, 5] }, ["hosts.1"]],
  ["host without id", { ...base, hosts: [{ id: "a" }, {}] }, ["hosts.1.id"]],
  ["host id empty", { ...base, hosts: [{ id: "" }] }, ["hosts.0.id"]],
  ["host id with a space", { ...base, hosts: [{ id: "a b" }] }, ["hosts.0.id"]],
  ["host id not text", { ...base, hosts: [{ id: 7 }] }, ["hosts.0.id"]],
  ["host ids repeated", { ...base, hosts: [{ id: "a" }, { id: "b" }, { id: "a" }] }, ["hosts.2.id"]],
  ["hostVars not an object", { ...base, hosts: [{ id: "a", hostVars: [] }] }, ["hosts.0.hostVars"]],
  ["rnr_location not text", { ...base, hosts: [{ id: "a", hostVars: { rnr_location: 5 } }] }, ["hosts.0.hostVars.rnr_location"]],
  ["hostVars nested too deep", { ...base, hosts: [{ id: "a", hostVars: nested(40) as object }] }, ["hosts.0.hostVars"]],
  ["host key not base64", { ...base, hosts: [{ id: "a", sshPrivateKey: "not*base64" }] }, ["hosts.0.sshPrivateKey"]],
  ["properties a list", { ...base, properties: [] }, ["properties"]],
  ["properties text", { ...base, properties: "a=1" }, ["properties"]],
  ["properties nested too deep", { ...base, properties: nested(40) }, ["properties"]],
  ["sshPrivateKey not base64", { ...base, sshPrivateKey: "not base64!" }, ["sshPrivateKey"]],
  ["sshPrivateKey not text", { ...base, sshPrivateKey: 5 }, ["sshPrivateKey"]],
  ["useDynamicInventory not boolean", { ...base, useDynamicInventory: "yes" }, ["useDynamicInventory"]],
  ["location empty", { ...base, location: "" }, ["location"]],
  ["location too long", { ...base, location: "x".repeat(65) }, ["location"]],
  ["location with a newline", { ...base, location: "a\nb" }, ["location"]],
  ["location not text", { ...base, location: 5 }, ["location"]],
  ["forks zero", { ...base, forks: 0 }, ["forks"]],
  ["forks negative", { ...base, forks: -1 }, ["forks"]],
  ["forks above 500", { ...base, forks: 10000 }, ["forks"]],
  ["forks fractional", { ...base, forks: 2.5 }, ["forks"]],
  ["forks as text", { ...base, forks: "x" }, ["forks"]],
  ["body null", null, ["body"]],
  ["body a list", [base], ["body"]],
  ["body a number", 5, ["body"]],
];

function expectProblem(r: { status: number; headers: Headers; json: any }, status: number) {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toContain("application/problem+json");
  expect(r.json).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
}

describe("job validation (error)", () => {
  it.each(CASES)("%s → 400 naming it", async (_label, body, fields) => {
    const t = await auth();
    const r = await api("POST", `/jobs/${ALIAS}`, { token: t, body: JSON.stringify(body) });
    expectProblem(r, 400);
    expect([...new Set(r.json.errors.map((e: { field: string }) => e.field))].sort()).toEqual([...fields].sort());
    for (const e of r.json.errors) expect(e.message).toEqual(expect.any(String));
  });

  it("names every bad field in one 400", async () => {
    const r = await api("POST", `/jobs/${ALIAS}`, {
      token: await auth(),
      body: {
        name: 5,
        executionTtl: 0,
        callbacks: [{ url: "https://ok.example" }, { url: "ftp://x" }],
        playbook: "%%%",
        hosts: [{ id: "a" }, { id: "" }, { id: "a" }],
        properties: [],
        location: "",
      },
    });
    expectProblem(r, 400);
    expect(r.json.errors.map((e: { field: string }) => e.field).sort()).toEqual(
      ["name", "executionTtl", "callbacks.1.url", "playbook", "hosts.1.id", "hosts.2.id", "properties", "location"].sort(),
    );
  });

  it("applies the same rules to PUT, and a rejected PUT changes nothing", async () => {
    const t = await auth();
    const job = (await api("POST", `/jobs/${ALIAS}`, { token: t, body: playbookJob({ sshPrivateKey: b64("K") }) })).json;
    const before = (await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: t })).text;
    for (const [, body, fields] of CASES.slice(0, 20)) {
      const r = await api("PUT", `/jobs/${ALIAS}/${job.id}`, { token: t, body: JSON.stringify(body) });
      expectProblem(r, 400);
      expect([...new Set(r.json.errors.map((e: { field: string }) => e.field))].sort()).toEqual([...fields].sort());
    }
    expect((await api("PUT", `/jobs/${ALIAS}/${job.id}`, { token: t, body: "{oops" })).status).toBe(400);
    expect((await api("GET", `/jobs/${ALIAS}/${job.id}`, { token: t })).text).toBe(before);
  });

  it("refuses loopback http callbacks when ALLOW_LOOPBACK_HTTP is off, alongside other errors", async () => {
    const send = (body: unknown) =>
      app.request(
        `/jobs/${ALIAS}`,
        { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", authorization: "" } },
        { ...env, ALLOW_LOOPBACK_HTTP: "false" },
      );
    const t = await auth();
    const post = async (body: unknown) => {
      const res = await app.request(
        `/jobs/${ALIAS}`,
        { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", authorization: `Bearer ${t}` } },
        { ...env, ALLOW_LOOPBACK_HTTP: "false" },
      );
      return { status: res.status, json: (await res.json()) as any };
    };
    expect((await send(base)).status).toBe(401);
    const r = await post({
      ...base,
      callbacks: [{ url: "https://ok.example" }, { url: "http://127.0.0.1:8080/x" }, { url: "http://localhost/x" }, { url: "http://[::1]/x" }],
      hosts: [{ id: "" }],
    });
    expect(r.status).toBe(400);
    expect(r.json.errors.map((e: { field: string }) => e.field).sort()).toEqual(["callbacks.1.url", "callbacks.2.url", "callbacks.3.url", "hosts.0.id"]);
    expect((await post({ ...base, callbacks: [{ url: "https://ok.example" }] })).status).toBe(200);
  });
});

describe("job requests that are not JSON (error)", () => {
  it("answers malformed JSON with a 400 naming the body", async () => {
    for (const text of ["{", "not json", "{'a':1}", '{"a":1,}', "\u0000"]) {
      const r = await api("POST", `/jobs/${ALIAS}`, { token: await auth(), body: text });
      expectProblem(r, 400);
      expect(r.json.errors).toEqual([{ field: "body", message: "is not valid JSON" }]);
    }
  });

  it("answers a body of another media type with 415", async () => {
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "application/xml"]) {
      const r = await api("POST", `/jobs/${ALIAS}`, { token: await auth(), body: JSON.stringify(base), headers: { "content-type": type } });
      expectProblem(r, 415);
    }
    const t = await auth();
    const res = await SELF.fetch(`http://runner.test/jobs/${ALIAS}`, { method: "POST", body: JSON.stringify(base), headers: { authorization: `Bearer ${t}` } });
    // A body without a content type: fetch labels a string text/plain, which is not JSON either.
    expect(res.status).toBe(415);
  });

  it("answers a body over 1 MiB with 413, with or without a content-length", async () => {
    const big = JSON.stringify({ ...base, name: "x", description: "y".repeat(1024 * 1024 + 10) });
    const r = await api("POST", `/jobs/${ALIAS}`, { token: await auth(), body: big });
    expectProblem(r, 413);
    const t = await auth();
    const bytes = new TextEncoder().encode(big);
    const stream = new ReadableStream({
      start(ctrl) {
        for (let i = 0; i < bytes.length; i += 64 * 1024) ctrl.enqueue(bytes.slice(i, i + 64 * 1024));
        ctrl.close();
      },
    });
    const res = await SELF.fetch(`http://runner.test/jobs/${ALIAS}`, {
      method: "POST",
      body: stream,
      headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
    });
    expect(res.status).toBe(413);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    await res.text();
  });
});

describe("job paths and queries (error)", () => {
  it.each([
    ["size=0", "size"],
    ["size=101", "size"],
    ["size=-1", "size"],
    ["size=abc", "size"],
    ["size=1.5", "size"],
    ["size=1e2", "size"],
    ["size=", "size"],
    ["page=-1", "page"],
    ["page=abc", "page"],
    ["page=0x1", "page"],
    ["page=1&page=2", "page"],
    ["page=99999999999", "page"],
  ])("GET /jobs/{alias}?%s → 400 naming %s", async (query, field) => {
    const r = await api("GET", `/jobs/${ALIAS}?${query}`, { token: await auth() });
    expectProblem(r, 400);
    expect(r.json.errors.map((e: { field: string }) => e.field)).toEqual([field]);
  });

  it("names both page and size when both are bad", async () => {
    const r = await api("GET", `/jobs/${ALIAS}?page=x&size=0`, { token: await auth() });
    expect(r.json.errors.map((e: { field: string }) => e.field).sort()).toEqual(["page", "size"]);
  });

  it("answers a bad immediate flag with 400", async () => {
    const r = await api("POST", `/jobs/${ALIAS}?immediate=yes`, { token: await auth(), body: base });
    expectProblem(r, 400);
    expect(r.json.errors.map((e: { field: string }) => e.field)).toEqual(["immediate"]);
  });

  it("answers a malformed account alias with 400 naming accountAlias", async () => {
    for (const alias of ["a", "x".repeat(33), "bad.alias", "sp%20ace"]) {
      const r = await api("GET", `/jobs/${alias}`, { token: await token("*", "admin") });
      expectProblem(r, 400);
      expect(r.json.errors[0].field).toBe("accountAlias");
    }
  });

  it("answers unknown job ids with 404 for GET, PUT and DELETE, and PUT does not create", async () => {
    const t = await auth();
    for (const id of ["nope", "00000000-0000-7000-8000-000000000000", "%E2%9C%93", "x".repeat(500)]) {
      expectProblem(await api("GET", `/jobs/${ALIAS}/${id}`, { token: t }), 404);
      expectProblem(await api("PUT", `/jobs/${ALIAS}/${id}`, { token: t, body: base }), 404);
      expectProblem(await api("DELETE", `/jobs/${ALIAS}/${id}`, { token: t }), 404);
    }
    const n = await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE id = 'nope'").first<{ n: number }>();
    expect(n?.n).toBe(0);
  });

  it("answers methods and paths it does not serve with problem+json", async () => {
    const t = await auth();
    expectProblem(await api("PATCH", `/jobs/${ALIAS}/x`, { token: t, body: base }), 404);
    expectProblem(await api("GET", `/jobs/${ALIAS}/x/y/z`, { token: t }), 404);
    expectProblem(await api("POST", `/jobs/${ALIAS}/${PLAYBOOK.slice(0, 4)}`, { token: t, body: base }), 404);
  });
});
