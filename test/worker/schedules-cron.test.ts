import { env } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { fireDueSchedules } from "../../worker/cron";
import { startExecution } from "../../worker/domain/executions";
import { slotExecutionId } from "../../worker/lib/ids";
import { newJob } from "./execution-fixtures";
import { api, token } from "./helpers";
import { disableAll, executionsOf, getSchedule, MINUTE, newSchedule, runAs, scheduleBody, setNextRun, tick } from "./schedule-fixtures";

/**
 * Firing, through the Worker's real `scheduled` handler with the tick's time controlled
 * (createScheduledController): each (schedule, slot) starts one execution as `POST …/start` does,
 * at most once whatever ticks repeat, overlap or crash; a missed slot fires once, late; one bad
 * schedule never stops the others; a schedule whose service account went does not fire, and says why.
 */
const ALIAS = "sched-cron";
let sa: string;
beforeAll(async () => {
  sa = await runAs(ALIAS, "user");
});
afterEach(disableAll);

const everyMinute = (extra: Record<string, unknown> = {}) => scheduleBody(sa, extra);

describe("a cron schedule", () => {
  it("fires at its slot, not before, as an execution with trigger schedule and its schedule_id", async () => {
    const jobId = await newJob(ALIAS);
    const s = await newSchedule(ALIAS, jobId, everyMinute());
    const slot = s.nextRunTime!;
    await tick(slot - 1);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(0);
    await tick(slot);
    const [e, ...more] = await executionsOf(ALIAS, jobId);
    expect(more).toHaveLength(0);
    expect(e).toMatchObject({ status: "PENDING", trigger: "schedule", schedule_id: s.id, job_id: jobId, account_alias: ALIAS });
    expect(e!.execution_id).toBe(await slotExecutionId(s.id, slot));
    const after = await getSchedule(ALIAS, jobId, s.id);
    expect(after).toMatchObject({ lastRunTime: slot, lastExecutionId: e!.execution_id, nextRunTime: slot + MINUTE, lastError: null, enabled: true });
    // The execution reads as any other: GET it, and its status events start with PENDING.
    const t = await token([ALIAS], "viewer");
    // It says which slot it fired for (how late it started is created_time minus that).
    expect((await api("GET", e!.links.self, { token: t })).json).toMatchObject({ trigger: "schedule", schedule_id: s.id, scheduled_time: slot });
    // Its status events say what started it too.
    const ev = await api("GET", `${e!.links.self}/events`, { token: t });
    expect(ev.json.results[0]).toMatchObject({ event_type: "execution_status", data: { status: "PENDING", trigger: "schedule", schedule_id: s.id } });
    // The next slot fires the next one.
    await tick(slot + MINUTE);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(2);
  });

  it("given under `type` (the original's form) fires the same way", async () => {
    const jobId = await newJob(ALIAS);
    const s = await newSchedule(ALIAS, jobId, { ...everyMinute(), trigger: undefined, type: { type: "cron", expression: "* * * * *" } });
    await tick(s.nextRunTime!);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(1);
  });

  it("disabled, does not fire", async () => {
    const jobId = await newJob(ALIAS);
    const s = await newSchedule(ALIAS, jobId, everyMinute());
    const slot = s.nextRunTime!;
    expect((await api("PUT", s.links.self, { token: await token([ALIAS], "user"), body: everyMinute({ enabled: false }) })).status).toBe(200);
    await tick(slot + 5 * MINUTE);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(0);
  });
});

describe("a date schedule", () => {
  it("fires once at its instant, then is disabled", async () => {
    const jobId = await newJob(ALIAS);
    const at = Date.now() + 90_000;
    const s = await newSchedule(ALIAS, jobId, everyMinute({ trigger: { type: "date", expression: new Date(at).toISOString() } }));
    expect(s.nextRunTime).toBe(at);
    await tick(at - 1000);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(0);
    await tick(at + 1000);
    const runs = await executionsOf(ALIAS, jobId);
    expect(runs).toHaveLength(1);
    expect(await getSchedule(ALIAS, jobId, s.id)).toMatchObject({ enabled: false, nextRunTime: null, lastRunTime: at, lastExecutionId: runs[0]!.execution_id });
    await tick(at + 10 * MINUTE);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(1);
  });
});

describe("at most once per (schedule, slot)", () => {
  it("a tick repeated at the same time starts nothing more", async () => {
    const jobId = await newJob(ALIAS);
    const s = await newSchedule(ALIAS, jobId, everyMinute());
    for (let i = 0; i < 3; i++) await tick(s.nextRunTime!);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(1);
  });

  it("two overlapping ticks start one execution per schedule", async () => {
    const jobs = await Promise.all([newJob(ALIAS), newJob(ALIAS), newJob(ALIAS)]);
    const made = await Promise.all(jobs.map((j) => newSchedule(ALIAS, j, everyMinute())));
    const slot = Math.max(...made.map((s) => s.nextRunTime!));
    for (const s of made) await setNextRun(s.id, slot);
    await Promise.all([tick(slot), tick(slot), fireDueSchedules(env, slot, { concurrency: 1 })]);
    for (const [i, j] of jobs.entries()) {
      const runs = await executionsOf(ALIAS, j);
      expect(runs.map((e) => e.execution_id)).toEqual([await slotExecutionId(made[i]!.id, slot)]);
    }
  });

  it("a tick that crashed after the start (before recording it) is repeated without a second execution", async () => {
    const jobId = await newJob(ALIAS);
    const s = await newSchedule(ALIAS, jobId, everyMinute());
    const slot = s.nextRunTime!;
    // What the crashed tick did: the start, under the slot's id; the schedule still waits for the slot.
    const executionId = await slotExecutionId(s.id, slot);
    await startExecution(env, ALIAS, jobId, {
      trigger: "schedule",
      scheduleId: s.id,
      executionId,
      actor: { subject: s.id, kind: "schedule", ip: null, requestId: null },
    });
    expect((await getSchedule(ALIAS, jobId, s.id)).nextRunTime).toBe(slot);
    await tick(slot + 1000);
    const runs = await executionsOf(ALIAS, jobId);
    expect(runs.map((e) => e.execution_id)).toEqual([executionId]);
    expect(await getSchedule(ALIAS, jobId, s.id)).toMatchObject({ lastRunTime: slot, lastExecutionId: executionId, nextRunTime: slot + MINUTE });
  });
});

describe("the tick's cost", () => {
  it("grows with the schedules due, not with those held: D1 reads the same rows with 10 or 10,010 held", async () => {
    const jobId = await newJob(ALIAS);
    const now = Date.now();
    const seed = (n: number, prefix: string, nextRun: number) =>
      env.DB.prepare(
        `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
         INSERT INTO schedules (id, account_alias, job_id, description, service_account_alias, trigger_type, expression, timezone, enabled, next_run_time, created_time, last_updated_time)
         SELECT ? || i, ?, ?, 'seeded', ?, 'cron', '* * * * *', 'UTC', 1, ? + i, ?, ? FROM k`,
      )
        .bind(n, prefix, ALIAS, jobId, sa, nextRun, now, now)
        .run();
    const tickOnce = async () => {
      await seed(10, `due-${crypto.randomUUID()}-`, now - 60_000);
      const report = await fireDueSchedules(env, now);
      expect(report).toMatchObject({ due: 10, fired: 10 });
      return report.rowsRead;
    };
    const few = await tickOnce();
    await seed(10_000, "held-", now + 365 * 24 * 3_600_000); // a year ahead
    const many = await tickOnce();
    // The range stops at the first row past `now`: one more read once there is such a row, whatever their number.
    expect(many - few).toBeLessThanOrEqual(1);
    expect(few).toBeLessThanOrEqual(2 * 10 + 2); // each due row and its service account, about
  });
});

describe("downtime", () => {
  it("slots missed while the service was down fire once, late, and the delay is recorded", async () => {
    const jobId = await newJob(ALIAS);
    const s = await newSchedule(ALIAS, jobId, everyMinute());
    // The last tick before the outage left the schedule waiting for a slot ten minutes ago.
    const now = Date.now();
    const missed = Math.floor(now / MINUTE) * MINUTE - 10 * MINUTE;
    await setNextRun(s.id, missed);
    await tick(now);
    const runs = await executionsOf(ALIAS, jobId);
    expect(runs).toHaveLength(1);
    const after = await getSchedule(ALIAS, jobId, s.id);
    expect(after.lastRunTime).toBe(missed);
    expect(after.lastRunDelayMs).toBeGreaterThanOrEqual(now - missed);
    expect(after.lastRunDelayMs).toBe(runs[0]!.created_time - missed);
    // Back on its cadence: the next slot after now, not the eleven it missed.
    expect(after.nextRunTime).toBe(Math.floor(now / MINUTE) * MINUTE + MINUTE);
    await tick(now);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(1);
  });
});

describe("failures stay with their schedule", () => {
  it("a schedule that throws (bad stored trigger, vanished job) records lastError; the others fire", async () => {
    const good = await newJob(ALIAS);
    const ok = await newSchedule(ALIAS, good, everyMinute());
    const slot = ok.nextRunTime!;
    // Rows the API would refuse, as if stored by an older version or changed behind its back.
    const insert = (id: string, jobId: string, expression: string, timezone: string) =>
      env.DB.prepare(
        `INSERT INTO schedules (id, account_alias, job_id, description, service_account_alias, trigger_type, expression, timezone, enabled, next_run_time, created_time, last_updated_time)
         VALUES (?, ?, ?, 'broken', ?, 'cron', ?, ?, 1, ?, 0, 0)`,
      )
        .bind(id, ALIAS, jobId, sa, expression, timezone, slot - 1)
        .run();
    await insert("bad-expression", good, "not a cron", "UTC");
    await insert("bad-zone", good, "* * * * *", "Mars/Olympus_Mons");
    await insert("no-job", "no-such-job", "* * * * *", "UTC");
    await tick(slot);
    expect((await executionsOf(ALIAS, good)).map((e) => e.schedule_id)).toEqual([ok.id]);
    const row = (id: string) =>
      env.DB.prepare("SELECT enabled, next_run_time, last_error FROM schedules WHERE id = ?")
        .bind(id)
        .first<{ enabled: number; next_run_time: number | null; last_error: string | null }>();
    const expr = (await row("bad-expression"))!;
    expect(expr.last_error).toMatch(/could not be evaluated/);
    expect(expr).toMatchObject({ enabled: 0, next_run_time: null }); // until someone replaces it
    expect((await row("bad-zone"))!.last_error).toMatch(/could not be evaluated/);
    const noJob = (await row("no-job"))!;
    expect(noJob.last_error).toMatch(/No such job/);
    expect(noJob.next_run_time).toBe(slot + MINUTE - (slot % MINUTE)); // skipped, moved on
    expect(await getSchedule(ALIAS, good, ok.id)).toMatchObject({ lastError: null, lastRunTime: slot });
  });

  it("a deleted service account stops the firing, with lastError; a demoted one too; restored, it fires again", async () => {
    const jobId = await newJob(ALIAS);
    const admin = await token([ALIAS], "admin");
    const gone = await runAs(ALIAS, "user");
    const s = await newSchedule(ALIAS, jobId, everyMinute({ serviceAccountAlias: gone }));
    expect((await api("DELETE", `/serviceAccounts/${ALIAS}/${gone}`, { token: admin })).status).toBe(204);
    const slot = s.nextRunTime!;
    await tick(slot);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(0);
    let after = await getSchedule(ALIAS, jobId, s.id);
    expect(after.lastError).toContain(`service account '${gone}' does not exist`);
    expect(after).toMatchObject({ lastRunTime: null, nextRunTime: slot + MINUTE, enabled: true });

    // The same alias again, but a viewer: still no.
    const r = await api("POST", `/serviceAccounts/${ALIAS}`, {
      token: admin,
      body: { alias: gone, username: `${gone}-again-${crypto.randomUUID().slice(0, 6)}`, password: "correct horse battery staple", role: "viewer" },
    });
    expect(r.status, r.text).toBe(200);
    await tick(slot + MINUTE);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(0);
    after = await getSchedule(ALIAS, jobId, s.id);
    expect(after.lastError).toContain("has role viewer");

    // Given back its rights, the schedule fires at its next slot and the error is cleared.
    expect((await api("PUT", `/serviceAccounts/${ALIAS}/${gone}`, { token: admin, body: { role: "user" } })).status).toBe(200);
    await tick(slot + 2 * MINUTE);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(1);
    expect((await getSchedule(ALIAS, jobId, s.id)).lastError).toBeNull();
  });
});

describe("daylight saving time (America/New_York, 2027)", () => {
  // 14 March 2027: 02:00 EST → 03:00 EDT. 7 November 2027: 02:00 EDT → 01:00 EST.
  async function dailyAt(expression: string, firstSlot: number) {
    const jobId = await newJob(ALIAS);
    const s = await newSchedule(ALIAS, jobId, everyMinute({ trigger: { type: "cron", expression }, timezone: "America/New_York" }));
    await setNextRun(s.id, firstSlot);
    return { jobId, s };
  }
  const slots = async (jobId: string, id: string, ticks: number[]) => {
    const seen: (number | null)[] = [];
    for (const at of ticks) {
      await tick(at);
      seen.push((await getSchedule(ALIAS, jobId, id)).nextRunTime);
    }
    return seen;
  };

  it("spring: 02:30 does not exist on the day; it fires once, at 03:00 EDT, then at 02:30 again", async () => {
    const first = Date.parse("2027-03-13T07:30:00Z"); // 02:30 EST
    const { jobId, s } = await dailyAt("30 2 * * *", first);
    const gap = Date.parse("2027-03-14T07:00:00Z"); // 03:00 EDT: the first valid time after the gap
    const after = Date.parse("2027-03-15T06:30:00Z"); // 02:30 EDT
    expect(await slots(jobId, s.id, [first, gap, after])).toEqual([gap, after, Date.parse("2027-03-16T06:30:00Z")]);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(3);
  });

  it("autumn: 01:30 happens twice on the day; it fires once, at the first", async () => {
    const first = Date.parse("2027-11-06T05:30:00Z"); // 01:30 EDT
    const { jobId, s } = await dailyAt("30 1 * * *", first);
    const firstOfTwo = Date.parse("2027-11-07T05:30:00Z"); // 01:30 EDT
    const secondOfTwo = Date.parse("2027-11-07T06:30:00Z"); // 01:30 EST, the repeat
    const nextDay = Date.parse("2027-11-08T06:30:00Z"); // 01:30 EST
    expect(await slots(jobId, s.id, [first, firstOfTwo, secondOfTwo])).toEqual([firstOfTwo, nextDay, nextDay]);
    expect(await executionsOf(ALIAS, jobId)).toHaveLength(2);
  });

  it("an interval job keeps its real-time cadence through the repeated hour", async () => {
    const { jobId, s } = await dailyAt("0 * * * *", Date.parse("2027-11-07T04:00:00Z")); // 00:00 EDT
    const hours = [4, 5, 6, 7].map((h) => Date.parse(`2027-11-07T0${h}:00:00Z`)); // 00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST
    expect(await slots(jobId, s.id, hours)).toEqual([5, 6, 7, 8].map((h) => Date.parse(`2027-11-07T0${h}:00:00Z`)));
  });
});
