import { createExecutionContext, createScheduledController, env, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../worker/index";
import { dispatcherStub } from "../../worker/domain/dispatch";
import { dispatcherKey, LEASE_ACK_MS, lostAgentWindowMs, UNREACHABLE_AFTER_MS } from "../../worker/domain/contracts";
import { sweepExpiredLeases } from "../../worker/domain/executions";
import type { Execution } from "../../worker/index";
import { AGENT, alarmOf, executionIn, failure, fakeClock, fire, indexRow, newJob, object, ref, report, stub } from "./execution-fixtures";

/**
 * The clock: TTL, stop escalation, unconfirmed kills, unreachable agents and lost leases, all from
 * the one alarm slot.
 * Time is moved with a faked Date (it reaches the objects: they run in this isolate); alarms are
 * fired with runDurableObjectAlarm.
 */
const ALIAS = "clock";
const SHARED = dispatcherKey(null, null); // the account has no agents: its work waits in the shared pool
let jobId: string;
let longJob: string;
const scope = { accountAlias: ALIAS };

beforeAll(async () => {
  jobId = await newJob(ALIAS, { executionTtl: 1 });
  longJob = await newJob(ALIAS);
});
const { t0, at } = fakeClock();
const status = async (id: string) => (await stub(id).view()).status;
/** The lost-agent window (LOST_AGENT_WINDOW_SECONDS in wrangler.toml: 120 s). */
const WINDOW = lostAgentWindowMs(env);

describe("TTL", () => {
  it("a PENDING execution whose TTL runs out ends STOPPED (ttl_expired) and leaves the dispatcher's queue", async () => {
    const id = await executionIn(ALIAS, jobId, "PENDING");
    expect((await dispatcherStub(env, SHARED).snapshot()).queued.map((q) => q.executionId)).toContain(id);
    expect(await alarmOf(id)).toBe(t0() + 60_000);
    at(59_000);
    await fire(id);
    expect(await status(id)).toBe("PENDING");
    at(60_001);
    await fire(id);
    const v = await stub(id).view();
    expect(v).toMatchObject({ status: "STOPPED", reason: "ttl_expired" });
    expect(v.timers[0]!.end).toBe(t0() + 60_001);
    expect((await dispatcherStub(env, SHARED).snapshot()).queued.map((q) => q.executionId)).not.toContain(id);
    expect(await alarmOf(id)).toBeNull();
  });

  it("a running one is stopped gracefully, escalates to a kill after the grace period, and ends KILLED when the agent never confirms", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    // The agent keeps heartbeating throughout: only the TTL and the escalations act.
    at(25_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    at(50_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    at(61_000);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "STOPPING", reason: "ttl_expired" });
    expect((await stub(id).heartbeat(AGENT, await ref(id))).command).toBe("stop");
    // Next in the one slot: when this agent would count as unreachable (it just called), before
    // the escalation 30 s after the TTL fired.
    expect(await alarmOf(id)).toBe(t0() + 61_000 + UNREACHABLE_AFTER_MS);
    at(85_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    at(91_001);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "KILLING", reason: "ttl_expired" });
    expect((await stub(id).heartbeat(AGENT, await ref(id))).command).toBe("kill");
    at(110_000);
    await stub(id).heartbeat(AGENT, await ref(id)); // alive, but never confirms the kill
    at(121_002);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "KILLED", reason: "kill_unconfirmed" });
    expect(await alarmOf(id)).toBeNull();
  });

  it("a late alarm does not matter: the next agent call applies the passed deadline first", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    at(25_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    at(50_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    at(61_000);
    expect(await stub(id).heartbeat(AGENT, await ref(id))).toMatchObject({ command: "stop" });
    expect(await status(id)).toBe("STOPPING");
  });
});

describe("stop escalation", () => {
  it("a stop with expiryDuration escalates to KILLING when it does not finish in time", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await stub(id).stop(scope, 10);
    expect(await alarmOf(id)).toBe(t0() + 10_000); // earlier than the lease's end and the TTL (60 s)
    at(9_000);
    await fire(id);
    expect(await status(id)).toBe("STOPPING");
    at(10_001);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "KILLING", reason: "stop_expired" });
    await report(id, { status: "KILLED" });
    expect(await stub(id).view()).toMatchObject({ status: "KILLED", reason: "stop_expired" });
  });

  it("a stop without expiry never escalates on its own; the agent's STOPPED ends it", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await stub(id).stop(scope, 0);
    expect(await alarmOf(id)).toBe(t0() + UNREACHABLE_AFTER_MS); // just the agent's heartbeats and the lease
    at(20_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    at(45_000);
    await fire(id);
    expect(await status(id)).toBe("STOPPING");
    await report(id, { status: "STOPPED" });
    expect(await stub(id).view()).toMatchObject({ status: "STOPPED", reason: "stopped" });
  });

  it("a second stop with a sooner expiry brings the escalation forward", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await stub(id).stop(scope, 20);
    await stub(id).stop(scope, 5);
    expect(await alarmOf(id)).toBe(t0() + 5_000);
  });
});

describe("lease loss", () => {
  it("a lease no agent acknowledges is held only briefly, then the work is re-queued", async () => {
    const id = await executionIn(ALIAS, jobId, "PENDING");
    expect(await stub(id).grantLease(AGENT)).not.toBeNull(); // handed to a poll whose agent is gone
    expect(await alarmOf(id)).toBe(t0() + LEASE_ACK_MS);
    at(LEASE_ACK_MS + 1);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "PENDING", agent_id: null });
    expect((await dispatcherStub(env, SHARED).snapshot()).queued.map((q) => q.executionId)).toContain(id);
  });

  it("an acknowledged lease lasts the lost-agent window from the agent's last call", async () => {
    const id = await executionIn(ALIAS, longJob, "PENDING");
    await stub(id).grantLease(AGENT);
    at(1_000);
    await stub(id).heartbeat(AGENT, await ref(id)); // the agent's first call acknowledges it
    at(LEASE_ACK_MS + 1);
    await fire(id);
    expect(await status(id)).toBe("INITIALIZING");
    at(1_000 + WINDOW - 1);
    await fire(id);
    expect(await status(id)).toBe("INITIALIZING");
    expect(await alarmOf(id)).toBe(t0() + 1_000 + WINDOW);
  });

  it("before the playbook started: back to PENDING, re-queued, and leasable by another agent", async () => {
    const id = await executionIn(ALIAS, longJob, "INITIALIZING");
    const first = await ref(id);
    await stub(id).uploadEvents(AGENT, { ...first, events: [{ seq: 1, timestamp: t0(), event_type: "verbose", stdout: "cloning\n" }] });
    at(WINDOW + 1);
    await fire(id);
    const v = await stub(id).view();
    expect(v).toMatchObject({ status: "PENDING", agent_id: null, attempt: 1 });
    expect((await dispatcherStub(env, SHARED).snapshot()).queued.map((q) => q.executionId)).toContain(id);
    expect(await failure(stub(id).heartbeat(AGENT, first))).toMatchObject({ status: 409, extensions: { command: "abandon" } });
    // The next agent's event numbering starts again at 1 and is not mistaken for a duplicate.
    expect(await stub(id).grantLease("agent-2")).not.toBeNull();
    const up = await stub(id).uploadEvents("agent-2", {
      ...(await ref(id)),
      events: [{ seq: 1, timestamp: t0(), event_type: "verbose", stdout: "cloning again\n" }],
    });
    expect(up.acceptedThrough).toBe(1);
    const log = await stub(id).logChunk(undefined, 0);
    expect(log.text).toContain("cloning\n");
    expect(log.text).toContain("cloning again\n");
  });

  it("after the playbook started: FAILURE (agent_lost)", async () => {
    const id = await executionIn(ALIAS, longJob, "RUNNING");
    at(20_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    expect(await alarmOf(id)).toBe(t0() + 20_000 + UNREACHABLE_AFTER_MS); // the heartbeat moved the one slot
    at(20_000 + WINDOW - 1);
    await fire(id);
    expect(await status(id)).toBe("RUNNING");
    at(20_000 + WINDOW + 1);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "FAILURE", reason: "agent_lost" });
    expect(await alarmOf(id)).toBeNull();
  });

  it("while STOPPING: STOPPED (agent_lost); while KILLING: KILLED (agent_lost)", async () => {
    const stopping = await executionIn(ALIAS, longJob, "STOPPING");
    const killing = await executionIn(ALIAS, longJob, "KILLING");
    at(WINDOW + 1);
    await fire(stopping);
    await fire(killing);
    expect(await stub(stopping).view()).toMatchObject({ status: "STOPPED", reason: "agent_lost" });
    expect(await stub(killing).view()).toMatchObject({ status: "KILLED", reason: "agent_lost" });
  });

  it("a revoked agent loses its lease at once", async () => {
    const running = await executionIn(ALIAS, jobId, "RUNNING");
    const initializing = await executionIn(ALIAS, jobId, "INITIALIZING");
    await stub(running).agentRevoked("someone-else");
    expect(await status(running)).toBe("RUNNING");
    await stub(running).agentRevoked(AGENT);
    await stub(initializing).agentRevoked(AGENT);
    expect(await stub(running).view()).toMatchObject({ status: "FAILURE", reason: "agent_revoked" });
    expect(await stub(initializing).view()).toMatchObject({ status: "PENDING", agent_id: null });
  });
});

describe("the lost-agent window", () => {
  const events = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, timestamp: t0() + from + i, event_type: "verbose", stdout: `line ${from + i}\n` }));

  it("heartbeats stop for 66 s, then resume: still RUNNING, unreachable answered during the gap only, and the events sent after it all stored in order", async () => {
    const id = await executionIn(ALIAS, longJob, "RUNNING");
    const lease = await ref(id);
    at(1_000);
    expect((await stub(id).uploadEvents(AGENT, { ...lease, events: events(1, 5) })).acceptedThrough).toBe(5);
    expect((await stub(id).view()).agent_unreachable_since).toBeNull();
    // The API is cut off from the agent: no heartbeat, no upload, for 66 s.
    at(1_000 + UNREACHABLE_AFTER_MS - 1);
    await fire(id);
    expect((await stub(id).view()).agent_unreachable_since).toBeNull(); // a late beat is not a partition
    at(1_000 + UNREACHABLE_AFTER_MS);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "RUNNING", agent_unreachable_since: t0() + 1_000 });
    // The executions list (the D1 index) says it too.
    expect(JSON.parse((await indexRow(id))!.snapshot)).toMatchObject({ status: "RUNNING", agent_unreachable_since: t0() + 1_000 });
    at(40_000);
    await fire(id);
    at(67_000);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "RUNNING", agent_unreachable_since: t0() + 1_000 });

    // Back: the agent's spooled events first, then its heartbeat and the playbook's end.
    const up = await stub(id).uploadEvents(AGENT, { ...lease, events: events(6, 40) });
    expect(up).toMatchObject({ acceptedThrough: 40, command: null, leaseExpiresAt: t0() + 67_000 + WINDOW });
    expect(await stub(id).view()).toMatchObject({ status: "RUNNING", agent_unreachable_since: null });
    expect(JSON.parse((await indexRow(id))!.snapshot).agent_unreachable_since).toBeNull();
    expect(await stub(id).heartbeat(AGENT, lease)).toMatchObject({ command: null, leaseExpiresAt: t0() + 67_000 + WINDOW });
    await report(id, { status: "SUCCESS" });
    expect(await stub(id).view()).toMatchObject({ status: "SUCCESS", reason: null, agent_unreachable_since: null });
    const page = await stub(id).events(undefined, 0, 0, 100);
    const lines = page.results.filter((e) => e.event_type === "verbose").map((e) => e.message.trim());
    expect(lines).toEqual(Array.from({ length: 40 }, (_, i) => `line ${i + 1}`));
    const seqs = page.results.map((e) => e.sequence);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1)); // no gap, no duplicate
  });

  it("heartbeats stop for the whole window: FAILURE agent_lost when it ends, not before", async () => {
    const id = await executionIn(ALIAS, longJob, "RUNNING");
    at(5_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    at(5_000 + UNREACHABLE_AFTER_MS + 1);
    await fire(id);
    expect(await alarmOf(id)).toBe(t0() + 5_000 + WINDOW);
    at(5_000 + WINDOW - 1);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "RUNNING", agent_unreachable_since: t0() + 5_000 });
    at(5_000 + WINDOW);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "FAILURE", reason: "agent_lost", agent_unreachable_since: null });
    expect(await alarmOf(id)).toBeNull();
  });

  it("an acknowledged lease whose playbook had not started goes back to the queue when the window ends, not before", async () => {
    const id = await executionIn(ALIAS, longJob, "INITIALIZING");
    await stub(id).heartbeat(AGENT, await ref(id));
    at(WINDOW - 1);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "INITIALIZING", agent_unreachable_since: t0() });
    at(WINDOW);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "PENDING", agent_id: null, agent_unreachable_since: null });
  });
});

describe("the cron sweep", () => {
  it("pokes executions whose alarm went missing, through the scheduled handler", async () => {
    const id = await executionIn(ALIAS, longJob, "RUNNING");
    await runInDurableObject(object(id), (_o: Execution, state) => state.storage.deleteAlarm());
    expect(await alarmOf(id)).toBeNull();
    at(3 * 60_000);
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await stub(id).view()).toMatchObject({ status: "FAILURE", reason: "agent_lost" });
    expect((await indexRow(id))!.status).toBe("FAILURE");
  });

  it("leaves healthy executions alone and does not poke the same one every minute", async () => {
    const id = await executionIn(ALIAS, longJob, "RUNNING");
    for (let t = 1_000; t <= 2 * 60_000 + 1_000; t += 8_000) {
      at(t);
      await stub(id).heartbeat(AGENT, await ref(id)); // keeps the lease; heartbeats do not touch the index row
    }
    const first = await sweepExpiredLeases(env, Date.now());
    expect(first).toBeGreaterThanOrEqual(1);
    expect(await status(id)).toBe("RUNNING");
    expect((await indexRow(id))!.checked_time).toBe(Date.now());
    at(2 * 60_000 + 20_000);
    await sweepExpiredLeases(env, Date.now());
    expect((await indexRow(id))!.checked_time).toBe(t0() + 121_000);
  });
});
