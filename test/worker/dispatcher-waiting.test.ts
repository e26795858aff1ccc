import { env, runDurableObjectAlarm } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { claimSlot, releaseSlots } from "../../worker/db/slots";
import { dispatcherKey } from "../../worker/domain/contracts";
import { api, token } from "./helpers";
import { dispatcher, execution, lease, newAgent, newJob, sleep } from "./agent-fixtures";

/**
 * A PENDING execution always says why it waits (`waiting_reason`, and a log line per change), as
 * its dispatcher finds it: no agent registered or none online for its queue, the account's limit,
 * or its place in the queue. Every account here is this file's own; nothing is left polling.
 */

const start = async (alias: string, jobId: string) => {
  const r = await api("POST", `/jobs/${alias}/${jobId}/start`, { token: await token([alias], "user"), body: {} });
  expect(r.status, r.text).toBe(200);
  return r.json as { execution_id: string; status: string; waiting_reason: string | null };
};
const settings = async (alias: string, body: Record<string, unknown>) => {
  const r = await api("PUT", `/accounts/${alias}/settings`, { token: await token([alias], "admin"), body });
  expect(r.status, r.text).toBe(200);
};
const reason = async (id: string) => (await execution(id)).waiting_reason;
const logOf = async (id: string) =>
  (await api("GET", `/jobs/${(await execution(id)).account_alias}/${(await execution(id)).job_id}/executions/${id}/log`, { token: await token("*", "viewer") }))
    .text;
/** The dispatcher looks at its waiting reasons again (its alarm: what the clock would do). */
const recheck = (key: string) => runDurableObjectAlarm(env.DISPATCHER.get(env.DISPATCHER.idFromName(key)));
/** Retries `check` until it passes: what a pass of the dispatcher tells arrives after the call that caused it. */
async function eventually(check: () => Promise<void>, tries = 150): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return await check();
    } catch (e) {
      if (i >= tries) throw e;
      await sleep(100);
    }
  }
}
const lastSeen = (agentId: string, at: number) => env.DB.prepare("UPDATE agents SET last_seen = ? WHERE id = ?").bind(at, agentId).run();

const fakeSlots: string[] = [];
afterEach(async () => {
  await releaseSlots(env.DB, fakeSlots.splice(0));
});

describe("waiting reasons", () => {
  it("no agent registered for the location → an agent appears → leased", async () => {
    const job = await newJob("wait1", { location: "dc1" });
    const started = await start("wait1", job);
    const id = started.execution_id;
    expect(started.waiting_reason).toBe("no agent registered for account wait1, location dc1");
    const agent = await newAgent("wait1", { location: "dc1" });
    await recheck(dispatcherKey("wait1", "dc1"));
    await eventually(async () => expect(await reason(id)).toBe("next in line, waiting for a free agent"));
    const r = await lease(agent, 2_000);
    expect(r.json.executionId).toBe(id);
    expect(await execution(id)).toMatchObject({ status: "INITIALIZING", waiting_reason: null });
    const log = await logOf(id);
    const lines = log.split("\n").filter((l) => l.startsWith("[runner] execution"));
    expect(lines).toEqual([
      "[runner] execution PENDING",
      "[runner] execution PENDING: no agent registered for account wait1, location dc1",
      "[runner] execution PENDING: next in line, waiting for a free agent",
      "[runner] execution INITIALIZING",
    ]);
    const events = (await api("GET", `/jobs/wait1/${job}/executions/${id}/events`, { token: await token(["wait1"], "viewer") })).json.results;
    expect(events.filter((e: { event_type: string }) => e.event_type === "execution_waiting").map((e: { data: { code: string } }) => e.data.code)).toEqual([
      "no_agent",
      "queued_behind",
    ]);
  });

  it("an agent not seen within the online window does not count: the job stays on its account's queue, saying when it was last seen", async () => {
    const agent = await newAgent("wait2");
    await lastSeen(agent.agentId, Date.now() - 12 * 60_000);
    const job = await newJob("wait2");
    const held = await start("wait2", job);
    expect(held.waiting_reason).toBe("no online agent for account wait2, default location — last seen 12 minutes ago");
    expect((await dispatcher(dispatcherKey("wait2", null)).snapshot()).queued.map((q) => q.executionId)).toContain(held.execution_id);
    // The agent comes back: its poll takes the work.
    const r = await lease(agent, 2_000);
    expect(r.json.executionId).toBe(held.execution_id);
  });

  it("with sharedPoolFallback the same job goes to the shared pool instead", async () => {
    const agent = await newAgent("wait3");
    await lastSeen(agent.agentId, Date.now() - 5 * 60_000);
    await settings("wait3", { sharedPoolFallback: true });
    const job = await newJob("wait3");
    const moved = await start("wait3", job);
    expect((await dispatcher(dispatcherKey(null, null)).snapshot()).queued.map((q) => q.executionId)).toContain(moved.execution_id);
    expect(moved.waiting_reason).toMatch(/^no (agent registered|online agent) for the shared pool/);
    const pool = await newAgent(null);
    try {
      const r = await lease(pool, 2_000);
      expect(r.json.executionId).toBe(moved.execution_id);
    } finally {
      await api("DELETE", `/minions/~shared/${pool.agentId}`, { token: await token("*", "admin") });
    }
  });

  it("the account's limit: says so, and moves on when a slot frees", async () => {
    const agent = await newAgent("wait4"); // online (just registered), not polling
    const limit = Number(env.ACCOUNT_CONCURRENCY);
    for (let i = 0; i < limit; i++) {
      const slot = crypto.randomUUID();
      fakeSlots.push(slot);
      expect(await claimSlot(env.DB, slot, "wait4", limit, Date.now())).toBe("taken");
    }
    const job = await newJob("wait4");
    const { execution_id: id, waiting_reason } = await start("wait4", job);
    expect(waiting_reason).toBe(`account limit ${limit} of ${limit} running`);
    await releaseSlots(env.DB, [fakeSlots.pop()!]);
    await recheck(dispatcherKey("wait4", null));
    await eventually(async () => expect(await reason(id)).toBe("next in line, waiting for a free agent"));
    expect((await lease(agent, 2_000)).json.executionId).toBe(id);
    expect(await logOf(id)).toContain(`[runner] execution PENDING: account limit ${limit} of ${limit} running\n`);
  });

  it("queued behind N, moving up as the ones ahead are leased", async () => {
    const agent = await newAgent("wait5");
    const job = await newJob("wait5");
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await start("wait5", job)).execution_id);
    expect(await Promise.all(ids.map(reason))).toEqual(["next in line, waiting for a free agent", "queued behind 1", "queued behind 2", "queued behind 3"]);
    expect((await lease(agent, 2_000)).json.executionId).toBe(ids[0]);
    await eventually(async () =>
      expect(await Promise.all(ids.slice(1).map(reason))).toEqual(["next in line, waiting for a free agent", "queued behind 1", "queued behind 2"]),
    );
    const log = await logOf(ids[3]!);
    expect(log.indexOf("queued behind 3\n")).toBeLessThan(log.indexOf("queued behind 2\n"));
    // Leave nothing queued for another test to meet.
    for (const id of ids.slice(1)) await api("POST", `/jobs/wait5/${job}/executions/${id}/kill`, { token: await token(["wait5"], "user") });
    expect(await dispatcher(dispatcherKey("wait5", null)).sizes()).toMatchObject({ queued: 0, told: 0 });
  });

  it("a long queue is told its place in steps, not one by one", async () => {
    const { queuedBehind } = await import("../../worker/domain/waiting");
    expect([0, 10, 11, 20, 21, 50, 51, 120, 1001].map((n) => queuedBehind(n))).toEqual([
      { code: "queued_behind", ahead: 0 },
      { code: "queued_behind", ahead: 10 },
      { code: "queued_behind", ahead: 10, more: true },
      { code: "queued_behind", ahead: 10, more: true },
      { code: "queued_behind", ahead: 20, more: true },
      { code: "queued_behind", ahead: 20, more: true },
      { code: "queued_behind", ahead: 50, more: true },
      { code: "queued_behind", ahead: 100, more: true },
      { code: "queued_behind", ahead: 1000, more: true },
    ]);
  });
});
