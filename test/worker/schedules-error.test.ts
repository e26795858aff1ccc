import { beforeAll, describe, expect, it } from "vitest";
import { newJob } from "./execution-fixtures";
import { send, seeded } from "./fuzz-fixtures";
import { api, token } from "./helpers";
import { newSchedule, runAs, scheduleBody } from "./schedule-fixtures";

/** Every rule of a schedule body: a 400 (problem+json) naming the offending field, on create and on replace. */
const ALIAS = "sched-error";
const OTHER = "sched-error-other";
let jobId: string;
let sa: string;
let viewerSa: string;
let foreignSa: string;
let t: string;
beforeAll(async () => {
  jobId = await newJob(ALIAS);
  sa = await runAs(ALIAS, "user");
  viewerSa = await runAs(ALIAS, "viewer");
  foreignSa = await runAs(OTHER, "admin");
  t = await token([ALIAS], "user");
});

const cron = (expression: string) => ({ trigger: { type: "cron", expression } });
const date = (expression: string) => ({ trigger: { type: "date", expression } });
const PAST = "2020-01-01T00:00:00Z";

// [what, body changes (applied over a valid body), the field named, what its message says]
const CASES: [string, () => Record<string, unknown>, string, RegExp][] = [
  ["no description", () => ({ description: undefined }), "description", /./],
  ["an empty description", () => ({ description: "  " }), "description", /empty/],
  ["no service account", () => ({ serviceAccountAlias: undefined }), "serviceAccountAlias", /./],
  ["an unknown service account", () => ({ serviceAccountAlias: "nobody-here" }), "serviceAccountAlias", /does not exist/],
  ["a service account of another account", () => ({ serviceAccountAlias: foreignSa }), "serviceAccountAlias", /does not exist/],
  ["a service account with role viewer", () => ({ serviceAccountAlias: viewerSa }), "serviceAccountAlias", /role viewer/],
  ["no trigger at all", () => ({ trigger: undefined }), "trigger", /required/],
  ["a trigger type that is neither", () => ({ trigger: { type: "weekly", expression: "* * * * *" } }), "trigger.type", /cron or date/],
  ["no expression", () => ({ trigger: { type: "cron" } }), "trigger.expression", /./],
  ["an empty expression", () => cron(" "), "trigger.expression", /empty/],
  ["words", () => cron("every day at noon"), "trigger.expression", /five fields/],
  ["six fields (seconds)", () => cron("0 * * * * *"), "trigger.expression", /five fields/],
  ["four fields", () => cron("* * * *"), "trigger.expression", /five fields/],
  ["a minute of 61", () => cron("61 * * * *"), "trigger.expression", /not a valid cron expression/],
  ["a step of 0", () => cron("*/0 * * * *"), "trigger.expression", /not a valid cron expression/],
  ["@reboot", () => cron("@reboot"), "trigger.expression", /@hourly/],
  ["a cron that never fires (30 February)", () => cron("0 0 30 2 *"), "trigger.expression", /never fires/],
  ["a cron that never fires (31 April)", () => cron("0 0 31 4 *"), "trigger.expression", /never fires/],
  ["a bad expression under `type`", () => ({ trigger: undefined, type: { type: "cron", expression: "61 * * * *" } }), "type.expression", /not a valid/],
  ["`trigger` and `type` that disagree", () => ({ type: { type: "cron", expression: "0 * * * *" } }), "type", /same as `trigger`/],
  ["a date in the past", () => date(PAST), "trigger.expression", /in the past/],
  ["a date that does not exist", () => date("2030-02-30T10:00:00Z"), "trigger.expression", /not a real date/],
  ["a date without a time", () => date("2030-01-01"), "trigger.expression", /ISO-8601/],
  ["a date in words", () => date("tomorrow"), "trigger.expression", /ISO-8601/],
  ["an unknown time zone", () => ({ timezone: "Mars/Olympus_Mons" }), "timezone", /IANA/],
  ["an offset for a time zone", () => ({ timezone: "+02:00" }), "timezone", /IANA/],
  ["an empty time zone", () => ({ timezone: "" }), "timezone", /IANA/],
  ["enabled as a string", () => ({ enabled: "yes" }), "enabled", /./],
  ["a description too long", () => ({ description: "x".repeat(1001) }), "description", /1000/],
];

function problemFields(r: { status: number; json: any; headers: Headers }) {
  expect(r.headers.get("content-type")).toContain("application/problem+json");
  return (r.json.errors ?? []).map((e: { field: string }) => e.field);
}

describe("schedule bodies (error)", () => {
  it.each(CASES)("create: %s → 400 naming %s", async (_what, change, field, message) => {
    const r = await api("POST", `/jobs/${ALIAS}/${jobId}/schedules`, { token: t, body: { ...scheduleBody(sa), ...change() } });
    expect(r.status, r.text).toBe(400);
    expect(problemFields(r)).toEqual([field]);
    expect(r.json.errors[0].message).toMatch(message);
  });

  it.each(CASES)("replace: %s → 400 naming %s", async (_what, change, field) => {
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa));
    const r = await api("PUT", s.links.self, { token: t, body: { ...s, ...scheduleBody(sa), ...change() } });
    expect(r.status, r.text).toBe(400);
    expect(problemFields(r)).toEqual([field]);
    expect((await api("GET", s.links.self, { token: t })).json).toEqual(s); // nothing changed
  });

  it("names every bad field at once", async () => {
    const r = await api("POST", `/jobs/${ALIAS}/${jobId}/schedules`, {
      token: t,
      body: { description: "x", serviceAccountAlias: "nobody-here", trigger: { type: "cron", expression: "61 * * * *" }, timezone: "Nowhere/Land" },
    });
    expect(r.status).toBe(400);
    expect(problemFields(r).sort()).toEqual(["serviceAccountAlias", "timezone", "trigger.expression"]);
  });

  it("a past date is accepted only on a disabled schedule (a fired date read back and PUT)", async () => {
    const r = await api("POST", `/jobs/${ALIAS}/${jobId}/schedules`, { token: t, body: { ...scheduleBody(sa), ...date(PAST), enabled: false } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.nextRunTime).toBeNull();
  });

  it.each([
    ["not JSON", "{nope", "body"],
    ["an array", "[]", "body"],
    ["null", "null", "body"],
  ])("a body that is %s → 400", async (_what, raw, field) => {
    const r = await api("POST", `/jobs/${ALIAS}/${jobId}/schedules`, { token: t, body: raw });
    expect(r.status, r.text).toBe(400);
    expect(problemFields(r)).toContain(field);
  });

  it("paging outside its range → 400 naming the parameter", async () => {
    const r = await api("GET", `/jobs/${ALIAS}/${jobId}/schedules?size=101`, { token: t });
    expect(r.status).toBe(400);
    expect(problemFields(r)).toEqual(["size"]);
  });

  it("an unknown job or schedule is a 404", async () => {
    const body = scheduleBody(sa);
    expect((await api("POST", `/jobs/${ALIAS}/no-such-job/schedules`, { token: t, body })).status).toBe(404);
    expect((await api("GET", `/jobs/${ALIAS}/no-such-job/schedules`, { token: t })).status).toBe(404);
    for (const m of ["GET", "PUT", "DELETE"]) {
      const r = await api(m, `/jobs/${ALIAS}/${jobId}/schedules/no-such-schedule`, { token: t, body: m === "PUT" ? body : undefined });
      expect(r.status, `${m} ${r.text}`).toBe(404);
    }
    // A schedule is found under its own job only.
    const s = await newSchedule(ALIAS, jobId, body);
    const otherJob = await newJob(ALIAS);
    expect((await api("GET", `/jobs/${ALIAS}/${otherJob}/schedules/${s.id}`, { token: t })).status).toBe(404);
  });
});

describe("schedule bodies (fuzz)", () => {
  // Seeded, so a failure replays: random values in the fields a schedule has, under both trigger keys.
  const { int, pick, chance, randomString } = seeded(0x5c4e_d011);
  const EXPRESSIONS = [
    "* * * * *",
    "@hourly",
    "@HOURLY",
    "0 0 30 2 *",
    "*/7 1-5 * JAN-MAR MON#2",
    "L * * * *",
    "0 0 L * *",
    "5L",
    "2030-01-01T00:00:00",
    "2030-01-01T00:00:00Z",
    "2031-02-29T00:00:00Z",
    "99999-01-01T00:00:00Z",
    "0 0 1 1 1-0",
    "1,2,,3 * * * *",
  ];
  const value = (): unknown =>
    pick([
      null,
      true,
      0,
      -1,
      1e308,
      [],
      {},
      randomString(),
      pick(EXPRESSIONS),
      pick(["UTC", "Europe/Berlin", "Etc/GMT+14", "America/Argentina/ComodRivadavia", "../etc", "\u0000"]),
    ]);
  const trigger = () => (chance(0.7) ? { type: pick(["cron", "date", "CRON", value()]), expression: chance(0.8) ? pick(EXPRESSIONS) : value() } : value());

  it("300 random bodies: never a 5xx, every error problem+json, only valid ones stored", async () => {
    const seen = new Map<number, number>();
    const headers = { authorization: `Bearer ${t}`, "content-type": "application/json" };
    const s = await newSchedule(ALIAS, jobId, scheduleBody(sa, { enabled: false }));
    for (let i = 0; i < 300; i++) {
      const body: Record<string, unknown> = {};
      if (chance(0.9)) body.description = chance(0.8) ? "fuzz" : value();
      if (chance(0.9)) body.serviceAccountAlias = chance(0.8) ? sa : value();
      if (chance(0.8)) body[chance(0.5) ? "trigger" : "type"] = trigger();
      if (chance(0.5)) body.timezone = value();
      if (chance(0.5)) body.enabled = chance(0.8) ? false : value();
      const put = chance(0.3);
      await send(i, put ? "PUT" : "POST", put ? s.links.self : `/jobs/${ALIAS}/${jobId}/schedules`, { headers, body: JSON.stringify(body) }, seen);
      if (int(50) === 0) await send(i, "GET", `/jobs/${ALIAS}/${jobId}/schedules?size=${int(120)}`, { headers }, seen);
    }
    expect(seen.get(400)).toBeGreaterThan(50);
    expect(seen.get(200)).toBeGreaterThan(5);
  });
});
