import { env } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { newJob } from "./execution-fixtures";
import { api, token } from "./helpers";
import { disableAll, MINUTE, newSchedule, runAs, scheduleBody } from "./schedule-fixtures";

/** The Job Schedule Service API in the original's wire format: create, list, read, replace, delete. */
const ALIAS = "sched-happy";
let jobId: string;
let sa: string;
let t: string;
beforeAll(async () => {
  jobId = await newJob(ALIAS);
  sa = await runAs(ALIAS, "user");
  t = await token([ALIAS], "user");
});
afterEach(disableAll);
const base = () => `/jobs/${ALIAS}/${jobId}/schedules`;

const FIELDS = [
  "accountAlias",
  "createdTime",
  "description",
  "enabled",
  "id",
  "jobId",
  "lastError",
  "lastExecutionId",
  "lastRunDelayMs",
  "lastRunTime",
  "lastUpdatedTime",
  "links",
  "nextRunTime",
  "scheduleId",
  "serviceAccountAlias",
  "timezone",
  "trigger",
];

describe("create", () => {
  it("answers 200 with every field, `id` and `scheduleId` the same", async () => {
    const before = Date.now();
    const r = await api("POST", base(), { token: t, body: scheduleBody(sa, { description: "every minute" }) });
    expect(r.status, r.text).toBe(200);
    const s = r.json;
    expect(Object.keys(s).sort()).toEqual(FIELDS);
    expect(s).toMatchObject({
      scheduleId: s.id,
      jobId,
      accountAlias: ALIAS,
      description: "every minute",
      trigger: { type: "cron", expression: "* * * * *" },
      timezone: "UTC",
      enabled: true,
      serviceAccountAlias: sa,
      lastRunTime: null,
      lastRunDelayMs: null,
      lastExecutionId: null,
      lastError: null,
    });
    // The next whole minute.
    expect(s.nextRunTime % MINUTE).toBe(0);
    expect(s.nextRunTime).toBeGreaterThan(before);
    expect(s.nextRunTime).toBeLessThanOrEqual(Date.now() + MINUTE);
    expect(s.createdTime).toBe(s.lastUpdatedTime);
    expect(s.links).toEqual({ self: `${base()}/${s.id}`, job: `/jobs/${ALIAS}/${jobId}`, executions: `/jobs/${ALIAS}/${jobId}/executions` });
    const got = await api("GET", s.links.self, { token: t });
    expect(got.status).toBe(200);
    expect(got.json).toEqual(s);
  });

  it("takes the trigger under `type`, as the original documented it, and answers the same", async () => {
    const a = await newSchedule(ALIAS, jobId, scheduleBody(sa, { trigger: { type: "cron", expression: "0 3 * * *" }, timezone: "Europe/Berlin" }));
    const b = await newSchedule(ALIAS, jobId, {
      ...scheduleBody(sa, { timezone: "Europe/Berlin" }),
      trigger: undefined,
      type: { type: "cron", expression: "0 3 * * *" },
    });
    for (const s of [a, b]) {
      expect(s.trigger).toEqual({ type: "cron", expression: "0 3 * * *" });
      expect(s).not.toHaveProperty("type");
    }
    expect(b.nextRunTime).toBe(a.nextRunTime);
    // Both keys saying the same is fine too.
    const both = await api("POST", base(), { token: t, body: { ...scheduleBody(sa), type: { type: "cron", expression: "* * * * *" } } });
    expect(both.status, both.text).toBe(200);
  });

  it("evaluates cron in the time zone: 03:00 in Berlin is 02:00 UTC in winter", async () => {
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa, { trigger: { type: "cron", expression: "0 3 * * *" }, timezone: "europe/berlin" }));
    expect(s.timezone).toBe("Europe/Berlin"); // canonical name
    const d = new Date(s.nextRunTime!);
    expect([d.getUTCHours(), d.getUTCMinutes()]).toEqual([2, 0]); // the clock here is in December
  });

  it.each([
    ["@hourly", (d: Date) => d.getUTCMinutes() === 0],
    ["@daily", (d: Date) => d.getUTCHours() === 0 && d.getUTCMinutes() === 0],
    ["@weekly", (d: Date) => d.getUTCDay() === 0 && d.getUTCHours() === 0],
    ["@monthly", (d: Date) => d.getUTCDate() === 1 && d.getUTCHours() === 0],
    ["@yearly", (d: Date) => d.getUTCMonth() === 0 && d.getUTCDate() === 1],
  ])("accepts %s", async (expression, ok) => {
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa, { trigger: { type: "cron", expression } }));
    expect(ok(new Date(s.nextRunTime!)), new Date(s.nextRunTime!).toISOString()).toBe(true);
  });

  it("a date fires at its instant; without an offset it is local time in the time zone", async () => {
    const at = Math.ceil((Date.now() + 3_600_000) / 1000) * 1000;
    const utc = await newSchedule(ALIAS, jobId, scheduleBody(sa, { trigger: { type: "date", expression: new Date(at).toISOString() } }));
    expect(utc.nextRunTime).toBe(at);
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa, { trigger: { type: "date", expression: "2030-07-01T09:00:00" }, timezone: "America/New_York" }));
    expect(s.nextRunTime).toBe(Date.parse("2030-07-01T13:00:00Z")); // EDT is UTC-4
  });

  it("a disabled schedule has no next run", async () => {
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa, { enabled: false }));
    expect(s.enabled).toBe(false);
    expect(s.nextRunTime).toBeNull();
  });

  it("a service account with role admin will do", async () => {
    const admin = await runAs(ALIAS, "admin");
    await newSchedule(ALIAS, jobId, scheduleBody(admin));
  });
});

describe("list", () => {
  it("answers a page, newest first, with all four members", async () => {
    const job = await newJob(ALIAS);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await newSchedule(ALIAS, job, scheduleBody(sa, { description: `s${i}` }))).id);
    const r = await api("GET", `/jobs/${ALIAS}/${job}/schedules?page=0&size=2`, { token: t });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ totalSize: 3, page: 0, size: 2 });
    expect(r.json.results.map((s: { id: string }) => s.id)).toEqual([ids[2], ids[1]]);
    const p1 = await api("GET", `/jobs/${ALIAS}/${job}/schedules?page=1&size=2`, { token: t });
    expect(p1.json.results.map((s: { id: string }) => s.id)).toEqual([ids[0]]);
  });

  it("of a job without schedules is an empty page; `links.schedules` on the job leads to it", async () => {
    const job = await newJob(ALIAS);
    const j = await api("GET", `/jobs/${ALIAS}/${job}`, { token: t });
    const r = await api("GET", j.json.links.schedules, { token: t });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toEqual({ totalSize: 0, page: 0, size: 100, results: [] });
  });
});

describe("replace", () => {
  it("accepts back what GET answered, changed, ignoring the read-only fields", async () => {
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa));
    const body = {
      ...s,
      description: "changed",
      id: "x",
      scheduleId: "y",
      jobId: "z",
      accountAlias: "other",
      nextRunTime: 1,
      lastRunTime: 2,
      createdTime: 3,
      links: {},
    };
    const r = await api("PUT", s.links.self, { token: t, body });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({
      id: s.id,
      scheduleId: s.id,
      jobId,
      accountAlias: ALIAS,
      description: "changed",
      nextRunTime: s.nextRunTime,
      createdTime: s.createdTime,
    });
    expect(r.json.lastUpdatedTime).toBeGreaterThanOrEqual(s.lastUpdatedTime);
    expect((await api("GET", s.links.self, { token: t })).json).toEqual(r.json);
  });

  it("a new trigger or time zone recomputes the next run; disabling clears it; enabling sets it again", async () => {
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa));
    const put = (extra: Record<string, unknown>) => api("PUT", s.links.self, { token: t, body: { ...scheduleBody(sa), ...extra } });
    const hourly = await put({ trigger: { type: "cron", expression: "@hourly" } });
    expect(hourly.json.nextRunTime % 3_600_000).toBe(0);
    expect(hourly.json.trigger).toEqual({ type: "cron", expression: "@hourly" });
    const kolkata = await put({ trigger: { type: "cron", expression: "@hourly" }, timezone: "Asia/Kolkata" });
    expect(kolkata.json.nextRunTime % 3_600_000).toBe(1_800_000); // UTC+05:30
    const off = await put({ enabled: false });
    expect(off.json).toMatchObject({ enabled: false, nextRunTime: null });
    const on = await put({ type: { type: "cron", expression: "*/5 * * * *" }, trigger: undefined });
    expect(on.json.enabled).toBe(true);
    expect(on.json.nextRunTime % (5 * MINUTE)).toBe(0);
  });

  it("clears lastError (the rules were checked again)", async () => {
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa));
    await env.DB.prepare("UPDATE schedules SET last_error = 'old news' WHERE id = ?").bind(s.id).run();
    const r = await api("PUT", s.links.self, { token: t, body: scheduleBody(sa) });
    expect(r.json.lastError).toBeNull();
  });
});

describe("delete", () => {
  it("answers 204, then the schedule is gone", async () => {
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa));
    const r = await api("DELETE", s.links.self, { token: t });
    expect(r.status).toBe(204);
    expect((await api("GET", s.links.self, { token: t })).status).toBe(404);
    expect((await api("DELETE", s.links.self, { token: t })).status).toBe(404);
  });

  it("deleting the job deletes its schedules (and only its)", async () => {
    const doomed = await newJob(ALIAS);
    const kept = await newJob(ALIAS);
    for (let i = 0; i < 3; i++) await newSchedule(ALIAS, doomed, scheduleBody(sa));
    const keep = await newSchedule(ALIAS, kept, scheduleBody(sa));
    expect((await api("DELETE", `/jobs/${ALIAS}/${doomed}`, { token: t })).status).toBe(204);
    const left = await env.DB.prepare("SELECT COUNT(*) AS n FROM schedules WHERE job_id = ?").bind(doomed).first<{ n: number }>();
    expect(left!.n).toBe(0);
    expect((await api("GET", `/jobs/${ALIAS}/${doomed}/schedules`, { token: t })).status).toBe(404);
    expect((await api("GET", keep.links.self, { token: t })).status).toBe(200);
  });
});

describe("limits", () => {
  it("a job holds at most 100 schedules, even when 105 are created at once: the rest are 409s; a delete makes room", async () => {
    const job = await newJob(ALIAS);
    const body = scheduleBody(sa, { enabled: false });
    const all = await Promise.all(Array.from({ length: 105 }, () => api("POST", `/jobs/${ALIAS}/${job}/schedules`, { token: t, body })));
    const made = all.filter((r) => r.status === 200);
    expect(made).toHaveLength(100);
    expect(all.filter((r) => r.status === 409)).toHaveLength(5);
    expect((await api("GET", `/jobs/${ALIAS}/${job}/schedules`, { token: t })).json.totalSize).toBe(100);
    const over = await api("POST", `/jobs/${ALIAS}/${job}/schedules`, { token: t, body });
    expect(over.status, over.text).toBe(409);
    expect(over.json.detail).toContain("100");
    expect((await api("DELETE", made[0]!.json.links.self, { token: t })).status).toBe(204);
    expect((await api("POST", `/jobs/${ALIAS}/${job}/schedules`, { token: t, body })).status).toBe(200);
  });
});
