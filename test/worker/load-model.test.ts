/**
 * The load model (docs/SCALING.md), counted from the real code: the recorder (worker/lib/meter.ts)
 * is installed around the bindings, and the real Worker is driven through its routes, its objects,
 * its queue consumer and its cron handler, step by step. Each step's counts are taken after it
 * settles. The test prints the table that docs/SCALING.md reproduces; it asserts only what must hold
 * for the counts to mean anything (every step did its work), and a few structural facts the scaling
 * argument rests on (a heartbeat never writes D1; a cron tick reads the same number of statements
 * whatever is held).
 */
import { env } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dispatcherKey, SEEN_WRITE_MS } from "../../worker/domain/contracts";
import { dispatcherStub } from "../../worker/domain/dispatch";
import { Agent, Dispatcher, Execution, LoginThrottle } from "../../worker/index";
import { installMeter, rawStub, type Meter, type MeterCounts } from "../../worker/lib/meter";
// @ts-expect-error plain ESM helper shared with the simulator
import { fakePlaybookBatches } from "../../scripts/lib/fake-playbook.mjs";
import { ageAgent, call, newAgent, sleep, type TestAgent } from "./agent-fixtures";
import { api, token } from "./helpers";
import { playbookJob } from "./jobs-fixtures";
import { MINUTE, newSchedule, runAs, scheduleBody, setNextRun, tick } from "./schedule-fixtures";
import { RECEIVER, Receiver } from "./webhook-fixtures";

const ALIAS = "load";
/** A typical run: 30 s of playbook, so six heartbeats (every 5 s) beside its uploads. */
const HEARTBEATS = 6;
/** Idle polls per minute: each long poll is held 25 s. */
const IDLE_POLLS_PER_MINUTE = 60 / 25;
/** Of those, the ones that write `lastSeen`: every other poll (the first at least SEEN_WRITE_MS, 30 s, after the last write). */
const IDLE_SEEN_WRITES_PER_MINUTE = 60 / (Math.ceil(SEEN_WRITE_MS / 25_000) * 25);

interface Row {
  step: string;
  /** HTTP requests the Worker received (or invocations: cron, queue batches). */
  requests: number;
  c: MeterCounts;
  note?: string;
}

let meter: Meter;
const receiver = new Receiver();
let agent: TestAgent;

beforeAll(async () => {
  receiver.install(); // first: the meter's fetch wraps the receiver, so deliveries count
  meter = installMeter(env as unknown as Record<string, unknown>, {
    EXECUTION: Execution,
    DISPATCHER: Dispatcher,
    LOGIN_THROTTLE: LoginThrottle,
    AGENT: Agent,
  });
  agent = await newAgent(ALIAS, { name: "load-1" });
});
afterAll(() => receiver.uninstall());

/** Waits for background work (waitUntil writes, the dispatcher's pump, queue batches) to finish. */
async function settle(ms = 300): Promise<void> {
  let last = JSON.stringify(meter.counts);
  for (let i = 0; i < 50; i++) {
    await sleep(ms);
    const now = JSON.stringify(meter.counts);
    if (now === last) return;
    last = now;
  }
}

/** Counts `fn` alone: settles before, resets, runs, settles after. */
async function counted(step: string, requests: number, fn: () => Promise<unknown>, note?: string): Promise<Row> {
  await settle(100);
  meter.reset();
  await fn();
  await settle();
  return { step, requests, c: meter.snapshot(), note };
}

/**
 * Makes the agent's last `lastSeen` write old (its object's record and its D1 row), as it is when a
 * call comes SEEN_WRITE_MS (30 s) or more after the last write: once per 30 s run of a busy agent,
 * every other idle poll.
 */
const agePastThrottle = () => meter.uncounted(() => ageAgent(agent.agentId, 0));

async function newJob(extra: Record<string, unknown> = {}): Promise<string> {
  const r = await api("POST", `/jobs/${ALIAS}`, { token: await token([ALIAS], "admin"), body: playbookJob(extra) });
  expect(r.status, r.text).toBe(200);
  return r.json.id as string;
}

/** Waits, uncounted, until the agent's long poll waits in its dispatcher. */
async function untilPolling(): Promise<void> {
  for (let i = 0; i < 1_500; i++) {
    if ((await rawStub(dispatcherStub(env, dispatcherKey(ALIAS, null))).snapshot()).waiting.length > 0) return;
    await sleep(10);
  }
  throw new Error("the agent's poll never reached its dispatcher");
}

/**
 * A start while the agent waits in its long poll, as an idle agent does: the poll is answered with
 * the lease. The poll comes SEEN_WRITE_MS after the last `lastSeen` write (once per 30 s run).
 */
async function startWithPoll(jobId: string): Promise<{ id: string; ref: { attempt: number; leaseId: string } }> {
  await agePastThrottle();
  const polling = call(agent, "POST", "/agent/lease", { waitMs: 20_000, capacity: 1 });
  await untilPolling();
  const r = await api("POST", `/jobs/${ALIAS}/${jobId}/start`, { token: await token([ALIAS], "user") });
  expect(r.status, r.text).toBe(200);
  const l = await polling;
  expect(l.status, l.text).toBe(200);
  expect(l.json.executionId).toBe(r.json.execution_id);
  return { id: r.json.execution_id, ref: { attempt: l.json.attempt, leaseId: l.json.leaseId } };
}

/**
 * One execution of a typical job (one host, five tasks), as the agent runs it: start and lease (its
 * poll waiting), heartbeats, RUNNING, the uploads, SUCCESS. Answers the rows and the execution id.
 */
async function oneExecution(jobId: string): Promise<{ rows: Row[]; id: string }> {
  const rows: Row[] = [];
  let id = "";
  let ref = { attempt: 0, leaseId: "" };
  rows.push(
    await counted("start (`POST …/start`) and lease (the agent's waiting poll answered with it)", 2, async () => {
      ({ id, ref } = await startWithPoll(jobId));
    }),
  );
  const path = `/agent/executions/${id}`;
  rows.push(
    await counted(`heartbeats (${HEARTBEATS}, a 30 s run)`, HEARTBEATS, async () => {
      for (let i = 0; i < HEARTBEATS; i++) {
        const r = await call(agent, "POST", `${path}/heartbeat`, ref);
        expect(r.status, r.text).toBe(200);
      }
    }),
  );
  rows.push(
    await counted("status RUNNING", 1, async () => {
      const r = await call(agent, "POST", `${path}/status`, { ...ref, status: "RUNNING" });
      expect(r.status, r.text).toBe(200);
    }),
  );
  const all = fakePlaybookBatches({ hosts: 1, tasks: 5 }) as unknown[][];
  // The agent sends what is left at the exit with the final status (the lease's reportEvents).
  const batches = all.slice(0, -1);
  const tail = all.at(-1)!;
  const events = batches.reduce((n, b) => n + b.length, 0);
  rows.push(
    await counted(`event uploads (${batches.length} batches, ${events} events)`, batches.length, async () => {
      for (const events of batches) {
        const r = await call(agent, "POST", `${path}/events`, { ...ref, events });
        expect(r.status, r.text).toBe(200);
      }
    }),
  );
  rows.push(
    await counted(`status SUCCESS with the last ${tail.length} events (the end: index, dispatcher \`finished\`, slot freed)`, 1, async () => {
      const r = await call(agent, "POST", `${path}/status`, { ...ref, status: "SUCCESS", exitCode: 0, events: tail });
      expect(r.status, r.text).toBe(200);
      expect(r.json.acceptedThrough).toBe(events + tail.length);
    }),
  );
  return { rows, id };
}

const sum = (rows: Row[]): Row => {
  const total: MeterCounts = JSON.parse(JSON.stringify(rows[0]!.c));
  for (const r of rows.slice(1)) addInto(total, r.c, 1);
  return { step: "**one execution, total**", requests: rows.reduce((n, r) => n + r.requests, 0), c: total };
};

function addInto(into: MeterCounts, from: MeterCounts, k: number): void {
  into.d1.reads += k * from.d1.reads;
  into.d1.writes += k * from.d1.writes;
  into.d1.batches += k * from.d1.batches;
  for (const [s, n] of Object.entries(from.d1.byStatement)) into.d1.byStatement[s] = (into.d1.byStatement[s] ?? 0) + k * n;
  for (const key of ["byClass", "byMethod", "byObject"] as const) {
    for (const [s, n] of Object.entries(from.objects[key])) into.objects[key][s] = (into.objects[key][s] ?? 0) + k * n;
  }
  for (const [s, n] of Object.entries(from.alarms)) into.alarms[s] = (into.alarms[s] ?? 0) + k * n;
  into.queue.sends += k * from.queue.sends;
  into.queue.messages += k * from.queue.messages;
  into.fetches += k * from.fetches;
}

/** `b − a`, per counter (what one addition costs). */
function minus(b: Row, a: Row, step: string, note?: string): Row {
  const c: MeterCounts = JSON.parse(JSON.stringify(b.c));
  addInto(c, a.c, -1);
  return { step, requests: b.requests - a.requests, c, note };
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));
const methods = (c: MeterCounts, cls: string) =>
  Object.entries(c.objects.byMethod)
    .filter(([k, n]) => k.startsWith(`${cls}.`) && n !== 0)
    .map(([k, n]) => `${k.slice(cls.length + 1)} ${fmt(n)}`)
    .join(", ");
const writes = (c: MeterCounts) =>
  Object.entries(c.d1.byStatement)
    .filter(([k, n]) => !k.startsWith("SELECT") && n !== 0)
    .map(([k, n]) => `${k.replace(/^(INSERT|UPDATE|DELETE) /, (v) => v[0]!.toLowerCase() + v.slice(1).toLowerCase())}${n === 1 ? "" : ` ×${fmt(n)}`}`)
    .join(", ");

function table(rows: Row[]): string {
  const out = [
    "| step | Worker requests | Agent DO | Execution DO | Dispatcher DO | D1 reads | D1 writes (which) | queue msgs | fetch | DO alarms |",
    "| --- | ---: | --- | --- | --- | ---: | --- | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    const c = r.c;
    const alarms = Object.entries(c.alarms)
      .filter(([, n]) => n !== 0)
      .map(([k, n]) => `${k} ${fmt(n)}`)
      .join(", ");
    const cell = (cls: string) => {
      const n = c.objects.byClass[cls] ?? 0;
      return n === 0 ? "0" : `${fmt(n)} (${methods(c, cls)})`;
    };
    out.push(
      `| ${r.step}${r.note ? ` — ${r.note}` : ""} | ${fmt(r.requests)} | ${cell("AGENT")} | ${cell("EXECUTION")} | ${cell("DISPATCHER")} | ${fmt(c.d1.reads)} | ${fmt(c.d1.writes)}${c.d1.writes ? ` (${writes(c)})` : ""} | ${fmt(c.queue.messages)} | ${fmt(c.fetches)} | ${alarms || "—"} |`,
    );
  }
  return out.join("\n");
}

describe("the load model", () => {
  it("counts one execution of a typical job, an idle agent, a log follower, webhook deliveries and the cron tick", { timeout: 120_000 }, async () => {
    const rows: Row[] = [];

    // ---- one execution, step by step ----------------------------------------------------------
    const plain = await newJob();
    const { rows: steps } = await oneExecution(plain);
    rows.push(...steps);
    const total = sum(steps);
    rows.push(total);
    // The start and its lease read D1 four times: the start's one batch (the job, the settings, the
    // account's agents for routing) and the claim's own check; with the agent waiting, no pass
    // counts slots for a waiting reason. The lease uses the job row the start read (no second
    // `SELECT jobs`).
    const startAndLease = steps[0]!;
    expect(startAndLease.c.d1.inBatches).toMatchObject({ "SELECT jobs": 1, "SELECT account_settings": 1, "SELECT agents": 1 });
    expect(startAndLease.c.d1.reads).toBe(4);
    expect(startAndLease.c.objects.byMethod["EXECUTION.waiting"] ?? 0).toBe(0);
    expect(total.c.d1.byStatement["SELECT jobs"]).toBe(1);
    const heartbeats = steps.find((r) => r.step.startsWith("heartbeats"))!;
    expect(heartbeats.c.objects.byMethod["EXECUTION.heartbeat"]).toBe(HEARTBEATS);
    // A heartbeat writes no index row, and within the throttle no lastSeen either: D1 nothing.
    expect(heartbeats.c.d1.writes).toBe(0);
    // Every agent call is authenticated by the agent's object, never by a D1 read of `agents`
    // (the start's read is routing: has the account an online agent).
    for (const step of steps.slice(1)) {
      expect(step.c.d1.byStatement["SELECT agents"] ?? 0, step.step).toBe(0);
      expect(step.c.objects.byMethod["AGENT.authenticate"], step.step).toBe(step.requests);
    }
    // lastSeen reaches D1 once in the run (the lease's poll came 30 s after the last write).
    expect(total.c.d1.byStatement["UPDATE agents"]).toBe(1);

    // ---- a log follower for the whole run: the same execution again, with `?follow=true` beside it ----
    {
      await settle(100);
      meter.reset();
      const userToken = await token([ALIAS], "viewer");
      let followed = "";
      const { id, ref } = await startWithPoll(plain);
      const follow = SELF_follow(`/jobs/${ALIAS}/${plain}/executions/${id}/log?follow=true`, userToken).then((t) => {
        followed = t;
      });
      // The rest of the run as before (started and leased).
      await runRest(id, ref);
      await follow;
      await settle();
      expect(followed).toContain("PLAY RECAP");
      const withFollower: Row = { step: "", requests: total.requests + 1, c: meter.snapshot() };
      rows.push(minus(withFollower, total, "log follower (`GET …/log?follow=true` for the whole run)", "the difference to a run without one"));
    }

    // ---- webhooks: the same execution of a job with one DEBUG callback -----------------------------
    {
      const hooked = await newJob({ callbacks: [{ url: `${RECEIVER}/load`, level: "DEBUG" }] });
      const { rows: hookedSteps } = await oneExecution(hooked);
      // Every event of the run (and the status events) is owed to a DEBUG callback.
      await receiver.waitFor("/load", 22);
      await settle(500);
      const all = receiver.at("/load");
      // The steps' counts (each includes the deliveries that ran meanwhile), the last one up to now.
      const counts = sum([...hookedSteps.slice(0, -1), { step: "", requests: 0, c: meter.snapshot() }]).c;
      expect(all.length).toBeGreaterThan(20);
      const withHooks: Row = { step: "", requests: total.requests, c: counts };
      const diff = minus(withHooks, total, `webhook deliveries (one DEBUG callback: ${all.length} deliveries)`, "the difference to a run without one");
      // Queue batches the consumer ran are invocations too: deliveries / max_batch_size (10) at best.
      diff.requests = Math.ceil(all.length / 10);
      rows.push(diff);
      const per = JSON.parse(JSON.stringify(diff)) as Row;
      per.step = "… per delivery";
      per.note = undefined;
      per.requests = diff.requests / all.length;
      const scaled: MeterCounts = JSON.parse(JSON.stringify(diff.c));
      addInto(scaled, diff.c, 1 / all.length - 1);
      per.c = scaled;
      rows.push(per);
    }

    // ---- an idle agent: long polls that end without work, one writing lastSeen and one not, times a minute ----
    {
      const idlePoll = () =>
        counted("", 1, async () => {
          const r = await call(agent, "POST", "/agent/lease", { waitMs: 200, capacity: 1 });
          expect(r.status).toBe(204);
        });
      await agePastThrottle();
      const writing = await idlePoll();
      const quiet = await idlePoll();
      expect(writing.c.d1.byStatement["UPDATE agents"]).toBe(1);
      expect(quiet.c.d1.reads + quiet.c.d1.writes).toBe(0);
      const perMinute: Row = {
        step: `idle agent, one minute (${fmt(IDLE_POLLS_PER_MINUTE)} polls of 25 s, ${fmt(IDLE_SEEN_WRITES_PER_MINUTE)} writing lastSeen)`,
        requests: IDLE_POLLS_PER_MINUTE,
        c: JSON.parse(JSON.stringify(writing.c)),
      };
      addInto(perMinute.c, writing.c, IDLE_SEEN_WRITES_PER_MINUTE - 1);
      addInto(perMinute.c, quiet.c, IDLE_POLLS_PER_MINUTE - IDLE_SEEN_WRITES_PER_MINUTE);
      rows.push(perMinute);
    }

    // ---- the cron tick -------------------------------------------------------------------------
    {
      const sa = await runAs(ALIAS);
      const cronJob = await newJob();
      const now = Date.now();
      const empty = await counted("cron tick, nothing held", 1, () => tick(now));
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await newSchedule(ALIAS, cronJob, scheduleBody(sa, { trigger: { type: "cron", expression: "0 0 1 1 *" } }))).id);
      const held = await counted("cron tick, 20 held, none due", 1, () => tick(now + 1));
      for (const id of ids.slice(0, 10)) await setNextRun(id, now - MINUTE);
      const due = await counted("cron tick, 10 due of 20 held", 1, () => tick(now + 2));
      expect(due.c.objects.byMethod["EXECUTION.init"]).toBe(10);
      rows.push(empty, held);
      const perHeld = minus(held, empty, "… per schedule held (of 20)");
      addInto(perHeld.c, perHeld.c, 1 / 20 - 1);
      perHeld.requests = 0;
      rows.push(perHeld);
      // Holding schedules costs no statement: the due query is an index range.
      expect(held.c.d1.reads).toBe(empty.c.d1.reads);
      const perDue = minus(due, held, "… per due schedule (of 10): starts one execution");
      addInto(perDue.c, perDue.c, 1 / 10 - 1);
      perDue.requests = 0;
      rows.push(perDue);
    }

    // What the D1 rows of one execution weigh (their columns' text, before SQLite's and the 7 indexes' overhead).
    const size = (rows: Record<string, unknown>[]) =>
      rows.length ? Math.round(rows.reduce((n, r) => n + JSON.stringify(Object.values(r)).length, 0) / rows.length) : 0;
    const execRow = size((await env.DB.prepare("SELECT * FROM executions WHERE job_id = ?").bind(plain).all()).results);
    const deliveryRow = size((await env.DB.prepare("SELECT * FROM deliveries").all()).results);
    console.log(`\nD1 bytes: an executions row ~${execRow} B of column text; a deliveries row ~${deliveryRow} B\n`);
    console.log(
      `\nLOAD MODEL (test/worker/load-model.test.ts)\n\n${table(rows)}\n\nD1 statements of one execution: ${JSON.stringify(total.c.d1.byStatement)}\n`,
    );
  });
});

/** The rest of `oneExecution` for an execution started and leased, uncounted per step. */
async function runRest(id: string, ref: { attempt: number; leaseId: string }): Promise<void> {
  const path = `/agent/executions/${id}`;
  for (let i = 0; i < HEARTBEATS; i++) await call(agent, "POST", `${path}/heartbeat`, ref);
  await call(agent, "POST", `${path}/status`, { ...ref, status: "RUNNING" });
  for (const events of fakePlaybookBatches({ hosts: 1, tasks: 5 }) as unknown[][]) {
    await call(agent, "POST", `${path}/events`, { ...ref, events });
    await sleep(50); // the follower wakes per upload, as it would at the agent's pace
  }
  await call(agent, "POST", `${path}/status`, { ...ref, status: "SUCCESS", exitCode: 0 });
}

/** Reads a followed log to its end (plain text). */
async function SELF_follow(path: string, t: string): Promise<string> {
  const { SELF } = await import("cloudflare:test");
  const res = await SELF.fetch(`http://runner.test${path}`, { headers: { authorization: `Bearer ${t}` } });
  return res.text();
}
