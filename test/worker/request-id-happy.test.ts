import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api, token } from "./helpers";
import { newJob } from "./execution-fixtures";

/**
 * Request ids and the Worker's request log (worker/lib/request-context.ts): every answer carries
 * Runner-Request-Id, every problem+json body names the same id, and every request writes one JSON
 * line with what it was and how it went, never a token or a query string.
 */
const A = "reqid";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every line the Worker logs while `fn` runs (the logger writes through console). */
async function captured(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const spies = (["log", "info", "warn", "error", "debug"] as const).map((m) =>
    vi.spyOn(console, m).mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" "))),
  );
  try {
    await fn();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  return lines;
}

const requestLines = (lines: string[]) =>
  lines.flatMap((l) => {
    try {
      const j = JSON.parse(l) as Record<string, unknown>;
      return j.msg === "request" ? [j] : [];
    } catch {
      return [];
    }
  });

afterEach(() => vi.restoreAllMocks());

describe("Runner-Request-Id", () => {
  it("is on every answer, 2xx, 4xx and 5xx, and problem+json bodies carry the same id", async () => {
    const jobId = await newJob(A, { sshPrivateKey: btoa("-----BEGIN KEY-----\nabc\n-----END KEY-----\n") });
    // A job whose stored secrets cannot be decrypted: replacing it is a 500 (the operator's key, not the input).
    await env.DB.prepare("UPDATE jobs SET secrets = ? WHERE id = ?").bind("v1:nokey:garbage", jobId).run();
    const t = await token([A], "admin");
    const answers = {
      ok: await api("GET", "/health", { token: null }),
      list: await api("GET", `/jobs/${A}`, { token: t }),
      unauthorized: await api("GET", `/jobs/${A}`, { token: null }),
      forbidden: await api("POST", `/jobs/${A}`, { token: await token([A], "viewer"), body: {} }),
      invalid: await api("GET", `/jobs/${A}?size=0`, { token: t }),
      missing: await api("GET", "/no/such/route", { token: null }),
      tooLarge: await api("POST", `/jobs/${A}`, { token: t, body: "x".repeat(1024 * 1024 + 1) }),
      broken: await api("PUT", `/jobs/${A}/${jobId}`, { token: t, body: { name: "n", playbook: btoa("- hosts: all\n"), hosts: [{ id: "h" }] } }),
      ui: await api("GET", "/ui/", { token: null }),
    };
    const statuses = Object.fromEntries(Object.entries(answers).map(([k, r]) => [k, r.status]));
    expect(statuses).toEqual({ ok: 200, list: 200, unauthorized: 401, forbidden: 403, invalid: 400, missing: 404, tooLarge: 413, broken: 500, ui: 200 });
    const ids = new Set<string>();
    for (const [what, r] of Object.entries(answers)) {
      const id = r.headers.get("runner-request-id");
      expect(id, what).toMatch(UUID);
      ids.add(id!);
      if (r.status >= 400) {
        expect(r.headers.get("content-type"), what).toContain("application/problem+json");
        expect(r.json.requestId, what).toBe(id);
      }
    }
    expect(ids.size).toBe(Object.keys(answers).length);
    // The 500 says nothing of the cause, but names the request.
    expect(answers.broken.json).toEqual({
      type: "https://runner.dev/problems/internal-server-error",
      title: "Internal Server Error",
      status: 500,
      detail: expect.any(String),
      requestId: answers.broken.headers.get("runner-request-id"),
    });
  });

  it("keeps a well-formed id the client sent, and replaces anything else", async () => {
    const mine = "ci-run-42.step-7:retry-1";
    const t = await token([A], "viewer");
    const kept = await api("GET", `/jobs/${A}`, { token: t, headers: { "runner-request-id": mine } });
    expect(kept.headers.get("runner-request-id")).toBe(mine);
    const refused = await api("GET", `/jobs/${A}/nope`, { token: t, headers: { "runner-request-id": mine } });
    expect(refused.status).toBe(404);
    expect(refused.json.requestId).toBe(mine);
    for (const bad of ["short", "has space in it", 'quote"and{json}', "x".repeat(129), "semi;colon-abcdef", "<script>abcdef"]) {
      const r = await api("GET", "/health", { token: null, headers: { "runner-request-id": bad } });
      expect(r.headers.get("runner-request-id"), bad).toMatch(UUID);
    }
  });
});

describe("the request log", () => {
  it("writes one JSON line per request: method, route pattern, status, duration, account, subject and its kind, request id", async () => {
    const jobId = await newJob(A);
    const t = await token([A], "user", "carol@example.test");
    let r!: Awaited<ReturnType<typeof api>>;
    const lines = await captured(async () => {
      r = await api("GET", `/jobs/${A}/${jobId}?page=0&access_token=query-secret-value`, { token: t });
    });
    expect(r.status).toBe(200);
    const logged = requestLines(lines);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toEqual({
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      level: "info",
      msg: "request",
      requestId: r.headers.get("runner-request-id"),
      method: "GET",
      route: "/jobs/:alias/:jobId",
      status: 200,
      durationMs: expect.any(Number),
      account: A,
      subject: "carol@example.test",
      subjectKind: "user",
    });
    // Never the token, the query string, nor the concrete path.
    for (const line of lines) {
      expect(line).not.toContain(t);
      expect(line).not.toContain(t.split(".")[2]!);
      expect(line).not.toContain("query-secret-value");
      expect(line).not.toContain(jobId);
    }
  });

  it("logs refusals, unmatched paths, operators and agents too, one line each, never a body or a credential", async () => {
    const op = await token("*", "admin", "root");
    const reg = await api("POST", `/minions/${A}/tokens`, { token: await token([A], "admin"), body: { name: "x" } });
    const secretBody = { username: "someone", password: "a password that must never be logged" };
    let agent!: Awaited<ReturnType<typeof api>>;
    const lines = await captured(async () => {
      await api("GET", `/jobs/${A}`, { token: null });
      await api("GET", "/nowhere?token=abc", { token: null });
      await api("GET", `/jobs/${A}`, { token: op });
      await api("POST", "/authentication/login", { token: null, body: secretBody });
      agent = await api("POST", "/agent/register", { token: null, body: { token: reg.json.token, name: "logged-agent" } });
      await api("POST", "/agent/lease", { token: agent.json.credential, body: { waitMs: 0, capacity: 0 } });
    });
    const logged = requestLines(lines);
    expect(logged.map((l) => [l.method, l.route, l.status, l.account ?? null, l.subjectKind ?? null])).toEqual([
      ["GET", "/jobs/:alias", 401, A, null],
      ["GET", null, 404, null, null],
      ["GET", "/jobs/:alias", 200, A, "operator"],
      ["POST", "/authentication/login", 401, null, null],
      ["POST", "/agent/register", 200, null, null],
      ["POST", "/agent/lease", 204, A, "agent"],
    ]);
    expect(logged[2]!.subject).toBe("root");
    expect(logged[5]!.subject).toBe(agent.json.agentId);
    for (const line of lines) {
      for (const secret of [op, secretBody.password, reg.json.token, agent.json.credential]) expect(line).not.toContain(secret);
    }
  });
});
