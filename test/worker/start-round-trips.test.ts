/**
 * The way from `POST …/start` to a waiting agent's lease, in D1 statements and round trips, counted
 * by the recorder (worker/lib/meter.ts) around the real routes and objects:
 * - the start reads the job, the settings and its routing answer in one batch, and routing asks the
 *   account's agents one statement (worker/domain/executions.ts, worker/db/agents.ts);
 * - a dispatcher with one account waiting goes straight to the slot claim (no `slotsHeld` count);
 * - the lease that follows the start at once uses the job row the start read; one granted later
 *   (behind a full account, or after the window) reads the job as it is then
 *   (worker/execution/held-job.ts).
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { claimSlot, releaseSlots } from "../../worker/db/slots";
import { dispatcherKey } from "../../worker/domain/contracts";
import { HELD_JOB_MS } from "../../worker/execution/held-job";
import { Agent, Dispatcher, Execution, LoginThrottle } from "../../worker/index";
import { installMeter, rawStub, type Meter, type MeterCounts } from "../../worker/lib/meter";
import { dispatcher, lease, newAgent, newJob, sleep, type TestAgent } from "./agent-fixtures";
import { api, token } from "./helpers";
import { b64, playbookJob } from "./jobs-fixtures";

let meter: Meter;
beforeAll(() => {
  meter = installMeter(env as unknown as Record<string, unknown>, {
    EXECUTION: Execution,
    DISPATCHER: Dispatcher,
    LOGIN_THROTTLE: LoginThrottle,
    AGENT: Agent,
  });
});

const fakeSlots: string[] = [];
afterEach(async () => {
  await releaseSlots(env.DB, fakeSlots.splice(0));
});

/** Waits until the counts stop changing (background work: write-throughs, the dispatcher's passes). */
async function settle(): Promise<void> {
  let last = JSON.stringify(meter.counts);
  for (let i = 0; i < 50; i++) {
    await sleep(300);
    const now = JSON.stringify(meter.counts);
    if (now === last) return;
    last = now;
  }
}

/** Counts `fn` alone. */
async function counted(fn: () => Promise<void>): Promise<MeterCounts> {
  await settle();
  meter.reset();
  await fn();
  await settle();
  return meter.snapshot();
}

/** Waits for the agent's poll to wait in its dispatcher, without counting the looks. */
async function untilPolling(key: string): Promise<void> {
  for (const until = Date.now() + 15_000; Date.now() < until; ) {
    if ((await rawStub(dispatcher(key)).snapshot()).waiting.length > 0) return;
    await sleep(10);
  }
  throw new Error(`no poll waits in ${key}`);
}

const start = async (alias: string, jobId: string): Promise<string> => {
  const r = await api("POST", `/jobs/${alias}/${jobId}/start`, { token: await token([alias], "user"), body: {} });
  expect(r.status, r.text).toBe(200);
  return r.json.execution_id as string;
};

const PLAYBOOK_V2 = b64("- hosts: all\n  tasks:\n    - debug: { msg: v2 }\n");
async function editJob(alias: string, jobId: string): Promise<void> {
  const r = await api("PUT", `/jobs/${alias}/${jobId}`, { token: await token([alias], "admin"), body: playbookJob({ name: "v2", playbook: PLAYBOOK_V2 }) });
  expect(r.status, r.text).toBe(200);
}

/** A start while the account's agent waits in a long poll: answers the lease. */
async function startWithPoll(alias: string, agent: TestAgent, jobId: string) {
  const polling = lease(agent, 20_000);
  await untilPolling(dispatcherKey(alias, null));
  const id = await start(alias, jobId);
  const r = await polling;
  expect(r.status, r.text).toBe(200);
  expect(r.json.executionId).toBe(id);
  return r;
}

describe("from the start to the lease", () => {
  it("a start with the agent waiting: the job read once, its reads in one batch, no slot count before the claim", async () => {
    const agent = await newAgent("rt1");
    const job = await newJob("rt1");
    const c = await counted(async () => {
      await startWithPoll("rt1", agent, job);
    });
    // The start's job, settings and routing reads went in one batch (one round trip) ...
    expect(c.d1.inBatches["SELECT jobs"]).toBe(1);
    expect(c.d1.inBatches["SELECT account_settings"]).toBe(1);
    expect(c.d1.inBatches["SELECT agents"]).toBe(1);
    // ... and the lease reused that job row instead of reading it again.
    expect(c.d1.byStatement["SELECT jobs"]).toBe(1);
    // Slots: the claim's own check alone; the pick counted nothing, and with the agent waiting no
    // waiting-reason pass counted either.
    expect(c.d1.byStatement["SELECT account_slots"]).toBe(1);
  });

  it("routing asks the agents one statement, even when the account's agents are all offline", async () => {
    const agent = await newAgent("rt2");
    await env.DB.prepare("UPDATE agents SET last_seen = ? WHERE id = ?")
      .bind(Date.now() - 10 * 60_000, agent.agentId)
      .run();
    const job = await newJob("rt2");
    let id = "";
    const c = await counted(async () => {
      id = await start("rt2", job);
    });
    // Routing's one, in the start's batch; besides it only the dispatcher's passes for the waiting
    // reason (one or two, the second a debounce later) read agents, one presence look each beside
    // their one slot count.
    expect(c.d1.inBatches["SELECT agents"]).toBe(1);
    expect(c.d1.byStatement["SELECT agents"]).toBe(1 + c.d1.byStatement["SELECT account_slots"]!);
    // It stayed on the account's own queue (no sharedPoolFallback).
    expect((await rawStub(dispatcher(dispatcherKey("rt2", null))).snapshot()).queued.map((q) => q.executionId)).toEqual([id]);
  });

  it("with several accounts waiting, the pick still counts their slots (round-robin skips a full one)", async () => {
    const pool = await newAgent(null);
    const ja = await newJob("rt3a");
    const jb = await newJob("rt3b");
    await start("rt3a", ja);
    await start("rt3b", jb);
    const c = await counted(async () => {
      expect((await lease(pool, 5_000)).status).toBe(200);
    });
    // The pick's count of both accounts and the claim's check (the pass after it finds one queued:
    // its count comes a debounce later and may land here too).
    expect(c.d1.byStatement["SELECT account_slots"]).toBeGreaterThanOrEqual(2);
    const c1 = await counted(async () => {
      expect((await lease(pool, 5_000)).status).toBe(200);
    });
    // One account left: the claim alone.
    expect(c1.d1.byStatement["SELECT account_slots"]).toBe(1);
    await api("DELETE", `/minions/~shared/${pool.agentId}`, { token: await token("*", "admin") });
  });

  it("a lease granted once the full account has room reads the job as it is then", async () => {
    const agent = await newAgent("rt4");
    const job = await newJob("rt4");
    const limit = Number(env.ACCOUNT_CONCURRENCY);
    for (let i = 0; i < limit; i++) {
      const slot = crypto.randomUUID();
      fakeSlots.push(slot);
      expect(await claimSlot(env.DB, slot, "rt4", limit, Date.now())).toBe("taken");
    }
    const polling = lease(agent, 20_000);
    await untilPolling(dispatcherKey("rt4", null));
    const id = await start("rt4", job); // held back: the account holds all its slots
    await editJob("rt4", job);
    await releaseSlots(env.DB, [fakeSlots.pop()!]);
    await runDurableObjectAlarm(rawStub(dispatcher(dispatcherKey("rt4", null)))); // the recheck, now
    const r = await polling;
    expect(r.status, r.text).toBe(200);
    expect(r.json.executionId).toBe(id);
    expect(r.json.job.name).toBe("v2");
    expect(r.json.job.playbook).toBe(PLAYBOOK_V2);
  });

  it("a lease granted after the window reads the job as it is then", async () => {
    const agent = await newAgent("rt5"); // online, not polling: the execution waits its turn
    const job = await newJob("rt5");
    const id = await start("rt5", job);
    // As if the agent came HELD_JOB_MS later (its object still holds the start's row).
    await runInDurableObject(rawStub(env.EXECUTION.get(env.EXECUTION.idFromName(id))), (o: Execution) => {
      expect(o.heldJob.held).not.toBeNull();
      o.heldJob.held!.at -= HELD_JOB_MS;
    });
    await editJob("rt5", job);
    let name = "";
    const c = await counted(async () => {
      const r = await lease(agent, 5_000);
      expect(r.json.executionId).toBe(id);
      name = r.json.job.name;
    });
    expect(name).toBe("v2");
    expect(c.d1.byStatement["SELECT jobs"]).toBe(1);
  });

  it("the lease is answered without waiting for a write-through in flight; the index row follows", async () => {
    const agent = await newAgent("rt6");
    const job = await newJob("rt6");
    const id = await start("rt6", job);
    // A flush that does not end until released (as the start's does not while the dispatcher's `enqueue` runs its pass).
    let release!: () => void;
    const stuck = new Promise<void>((r) => (release = r));
    await runInDurableObject(rawStub(env.EXECUTION.get(env.EXECUTION.idFromName(id))), (o: Execution) => {
      (o as unknown as { outbox: { chain: Promise<void> } }).outbox.chain = stuck;
    });
    // A backstop, not a measure: held behind that flush, the poll would never be answered.
    const r = await Promise.race([lease(agent, 5_000), sleep(15_000).then(() => null)]);
    expect(r?.status, "the lease waited for the write-through in flight").toBe(200);
    expect(r!.json.executionId).toBe(id);
    release();
    const row = async () => env.DB.prepare("SELECT status, agent_id FROM executions WHERE id = ?").bind(id).first<{ status: string; agent_id: string }>();
    for (let i = 0; i < 300 && (await row())?.status !== "INITIALIZING"; i++) await sleep(50);
    expect(await row()).toEqual({ status: "INITIALIZING", agent_id: agent.agentId });
  });
});
