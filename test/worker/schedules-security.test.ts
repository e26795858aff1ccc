import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { newJob } from "./execution-fixtures";
import { api, token } from "./helpers";
import { newSchedule, runAs, scheduleBody } from "./schedule-fixtures";

/**
 * Who may see and change schedules: viewers read, users (and admins) write, another account's
 * schedules do not exist (404, as a missing one), and a schedule never fires as another account's
 * service account.
 */
const ALIAS = "sched-sec";
const OTHER = "sched-sec-other";
let jobId: string;
let sa: string;
let s: Awaited<ReturnType<typeof newSchedule>>;
beforeAll(async () => {
  jobId = await newJob(ALIAS);
  sa = await runAs(ALIAS, "user");
  s = await newSchedule(ALIAS, jobId, scheduleBody(sa, { enabled: false }));
});

const list = () => `/jobs/${ALIAS}/${jobId}/schedules`;

describe("schedules (security)", () => {
  it("a viewer reads, and may not create, replace or delete", async () => {
    const v = await token([ALIAS], "viewer");
    expect((await api("GET", list(), { token: v })).status).toBe(200);
    expect((await api("GET", s.links.self, { token: v })).json).toEqual(s);
    for (const [m, path] of [
      ["POST", list()],
      ["PUT", s.links.self],
      ["DELETE", s.links.self],
    ] as const) {
      const r = await api(m, path, { token: v, body: m === "DELETE" ? undefined : scheduleBody(sa) });
      expect(r.status, `${m} ${r.text}`).toBe(403);
      expect(r.json.detail).toContain("needs 'user'");
    }
    expect((await api("GET", s.links.self, { token: v })).json).toEqual(s);
  });

  it.each(["user", "admin"] as const)("a %s creates, replaces and deletes", async (role) => {
    const t = await token([ALIAS], role);
    const made = await api("POST", list(), { token: t, body: scheduleBody(sa, { enabled: false }) });
    expect(made.status, made.text).toBe(200);
    expect((await api("PUT", made.json.links.self, { token: t, body: { ...made.json, description: "mine" } })).status).toBe(200);
    expect((await api("DELETE", made.json.links.self, { token: t })).status).toBe(204);
  });

  it("another account's token gets 404 for every route, whatever its role, and changes nothing", async () => {
    for (const role of ["viewer", "user", "admin"] as const) {
      const o = await token([OTHER], role);
      for (const [m, path] of [
        ["GET", list()],
        ["POST", list()],
        ["GET", s.links.self],
        ["PUT", s.links.self],
        ["DELETE", s.links.self],
      ] as const) {
        const r = await api(m, path, { token: o, body: m === "POST" || m === "PUT" ? scheduleBody(sa) : undefined });
        expect(r.status, `${role} ${m} ${path}: ${r.text}`).toBe(404);
      }
    }
    expect((await api("GET", s.links.self, { token: await token([ALIAS], "viewer") })).json).toEqual(s);
  });

  it("the other account's own job path does not reach this account's schedule either", async () => {
    const otherJob = await newJob(OTHER);
    const o = await token([OTHER], "admin");
    expect((await api("GET", `/jobs/${OTHER}/${otherJob}/schedules/${s.id}`, { token: o })).status).toBe(404);
    expect((await api("DELETE", `/jobs/${OTHER}/${otherJob}/schedules/${s.id}`, { token: o })).status).toBe(404);
    expect((await api("GET", `/jobs/${OTHER}/${jobId}/schedules`, { token: o })).status).toBe(404);
  });

  it("a schedule cannot be made to fire as another account's service account", async () => {
    const foreign = await runAs(OTHER, "admin");
    const r = await api("POST", list(), { token: await token([ALIAS], "user"), body: scheduleBody(foreign) });
    expect(r.status).toBe(400);
    expect(r.json.errors).toEqual([{ field: "serviceAccountAlias", message: expect.stringContaining("does not exist") }]);
  });

  it("answers never carry the service account's credentials", async () => {
    const all = await api("GET", list(), { token: await token([ALIAS], "viewer") });
    expect(all.text).not.toMatch(/password|username|token_version|bearer/i);
    const row = await env.DB.prepare("SELECT * FROM schedules WHERE id = ?").bind(s.id).first<Record<string, unknown>>();
    expect(Object.keys(row!)).not.toContain("password");
  });
});
