import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { dispatcherKey } from "../../worker/domain/contracts";
import type { Dispatcher } from "../../worker/index";
import { claimSlot, releaseSlots, SLOT_GRACE_MS, slotsHeld } from "../../worker/db/slots";
import { executionClient } from "../../worker/domain/execution-client";
import { api, token } from "./helpers";
import { call, dispatcher, execution, held, lease, newAgent, newExecution, newJob, sleep, untilWaiting } from "./agent-fixtures";

/** Takes `n` leases one after the other and answers their execution ids in the order granted. */
async function drain(a: Awaited<ReturnType<typeof newAgent>>, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await lease(a, 1_000);
    expect(r.status).toBe(200);
    ids.push(r.json.executionId);
  }
  return ids;
}

/** Runs a leased execution to SUCCESS through the agent routes (which frees its slot). */
async function finish(a: Awaited<ReturnType<typeof newAgent>>, executionId: string) {
  expect((await call(a, "POST", `/agent/executions/${executionId}/status`, { ...held(executionId), status: "RUNNING" })).status).toBe(200);
  expect((await call(a, "POST", `/agent/executions/${executionId}/status`, { ...held(executionId), status: "SUCCESS" })).status).toBe(200);
}

describe("dispatcher (happy)", () => {
  it("hands work to a poll that was waiting before the start, the moment it is queued", async () => {
    const a = await newAgent("hand");
    const job = await newJob("hand");
    const polling = lease(a, 20_000);
    await untilWaiting(dispatcherKey("hand", null), 1);
    const started = Date.now();
    const id = await newExecution("hand", job);
    const r = await polling;
    // A 200 (not the 204 of an expired wait) proves the waiting poll was woken by the start.
    expect(r.status).toBe(200);
    console.log(`long-poll hand-off: ${Date.now() - started} ms from start to lease`);
    expect(r.json).toMatchObject({ executionId: id, accountAlias: "hand", jobId: job, attempt: 1 });
    expect(r.json.job.playbook).toBeTruthy();
    const v = await execution(id);
    expect(v.status).toBe("INITIALIZING");
    expect(v.agent_id).toBe(a.agentId);
  });

  it("answers 204 after waitMs when no work comes", async () => {
    const a = await newAgent("idle");
    const r = await lease(a, 150);
    expect(r.status).toBe(204);
    expect((await dispatcher(dispatcherKey("idle", null)).snapshot()).waiting).toEqual([]);
  });

  it("gives out one job's executions in FIFO order", async () => {
    const a = await newAgent("fifo");
    const job = await newJob("fifo");
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await newExecution("fifo", job));
    expect(await drain(a, 4)).toEqual(ids);
  });

  it("takes turns between jobs so one job's backlog does not starve another", async () => {
    const a = await newAgent("fair");
    const busy = await newJob("fair", { name: "busy" });
    const other = await newJob("fair", { name: "other" });
    const b = [];
    for (let i = 0; i < 5; i++) b.push(await newExecution("fair", busy));
    const o = [await newExecution("fair", other), await newExecution("fair", other)];
    expect(await drain(a, 7)).toEqual([b[0], o[0], b[1], o[1], b[2], b[3], b[4]]);
  });

  it("takes turns between accounts in the shared pool", async () => {
    const shared = await newAgent(null);
    const j1 = await newJob("pool-a");
    const j2 = await newJob("pool-b");
    const a = [await newExecution("pool-a", j1), await newExecution("pool-a", j1), await newExecution("pool-a", j1)];
    const b = [await newExecution("pool-b", j2)];
    const got = await drain(shared, 4);
    expect(got).toEqual([a[0], b[0], a[1], a[2]]);
  });

  it("holds the account at ACCOUNT_CONCURRENCY leases: the next waits until one finishes", async () => {
    const limit = Number(env.ACCOUNT_CONCURRENCY);
    const a = await newAgent("limit");
    const job = await newJob("limit");
    const ids = [];
    for (let i = 0; i <= limit; i++) ids.push(await newExecution("limit", job));
    const first = await Promise.all(Array.from({ length: limit }, () => lease(a, 5_000)));
    expect(first.map((r) => r.status)).toEqual(Array(limit).fill(200));
    const key = dispatcherKey("limit", null);
    const extra = lease(a, 20_000);
    await untilWaiting(key, 1);
    let snap = await dispatcher(key).snapshot();
    expect(snap.leased).toHaveLength(limit);
    expect(snap.queued.map((q) => q.executionId)).toEqual([ids[limit]]);
    expect((await execution(ids[limit]!)).status).toBe("PENDING");

    await finish(a, first[0]!.json.executionId);
    const r = await extra;
    expect(r.status).toBe(200);
    expect(r.json.executionId).toBe(ids[limit]);
    snap = await dispatcher(key).snapshot();
    expect(snap.leased).toHaveLength(limit);
    expect(snap.queued).toEqual([]);
  });

  it("does not give a lease to a waiter whose request is gone; the next waiter gets it", async () => {
    const a = await newAgent("gone");
    const job = await newJob("gone");
    const key = dispatcherKey("gone", null);
    // First in line: a poll whose caller reports it is no longer there.
    const ghost = dispatcher(key).poll({ agentId: "ghost", alive: () => false }, 20_000);
    await untilWaiting(key, 1);
    const live = lease(a, 20_000);
    await untilWaiting(key, 2);
    const id = await newExecution("gone", job);
    expect(await ghost).toBeNull();
    const r = await live;
    expect(r.status).toBe(200);
    expect(r.json.executionId).toBe(id);
    expect((await execution(id)).agent_id).toBe(a.agentId);
  });

  it("keeps the lease queued when the agent's HTTP poll was abandoned", async () => {
    const a = await newAgent("abandon");
    const job = await newJob("abandon");
    const key = dispatcherKey("abandon", null);
    const ac = new AbortController();
    const polling = SELF.fetch("http://runner.test/agent/lease", {
      method: "POST",
      headers: { authorization: `Bearer ${a.credential}`, "content-type": "application/json" },
      body: JSON.stringify({ waitMs: 20_000 }),
      signal: ac.signal,
    }).catch((e: unknown) => e);
    await untilWaiting(key, 1);
    ac.abort();
    expect(await polling).toBeInstanceOf(Error);
    const id = await newExecution("abandon", job);
    // Wait until the dispatcher has dealt with the waiter (granted or dropped it).
    for (let i = 0; i < 200 && (await dispatcher(key).snapshot()).waiting.length > 0; i++) await sleep(10);
    // The abandoned waiter is skipped: the execution is still PENDING and queued, not lost to nobody.
    const v = await execution(id);
    expect(v.status).toBe("PENDING");
    expect(v.agent_id).toBeNull();
    expect((await dispatcher(key).snapshot()).queued.map((q) => q.executionId)).toEqual([id]);
    const r = await lease(a, 1_000);
    expect(r.status).toBe(200);
    expect(r.json.executionId).toBe(id);
  });

  it("keeps the queue across an eviction of the object", async () => {
    const a = await newAgent("evict");
    const job = await newJob("evict");
    const key = dispatcherKey("evict", null);
    const id = await newExecution("evict", job);
    const stub = dispatcher(key);
    expect((await stub.snapshot()).queued.map((q) => q.executionId)).toEqual([id]);
    // Reset the object: its memory is gone, its SQLite storage stays.
    await runInDurableObject(stub, (_o: Dispatcher, state) => {
      state.abort("test eviction");
    }).catch(() => undefined);
    const fresh = dispatcher(key);
    expect((await fresh.snapshot()).queued.map((q) => q.executionId)).toEqual([id]);
    const r = await lease(a, 1_000);
    expect(r.status).toBe(200);
    expect(r.json.executionId).toBe(id);
  });

  it("drops an execution stopped while queued, and skips one that is no longer PENDING", async () => {
    const a = await newAgent("drop");
    const job = await newJob("drop");
    const key = dispatcherKey("drop", null);
    const stopped = await newExecution("drop", job);
    const killedBehind = await newExecution("drop", job);
    const next = await newExecution("drop", job);
    await executionClient(env, stopped).stop({ accountAlias: "drop" });
    expect((await dispatcher(key).snapshot()).queued.map((q) => q.executionId)).toEqual([killedBehind, next]);
    // Still queued here but killed on the object's side (as if `remove` got lost): the grant answers null.
    await executionClient(env, killedBehind).kill({ accountAlias: "drop" });
    await dispatcher(key).enqueue({ executionId: killedBehind, accountAlias: "drop", jobId: job, enqueuedAt: 0 });
    const r = await lease(a, 1_000);
    expect(r.status).toBe(200);
    expect(r.json.executionId).toBe(next);
    expect((await dispatcher(key).snapshot()).queued).toEqual([]);
  });

  it("enqueue is idempotent by executionId", async () => {
    const key = dispatcherKey("idem", null);
    const item = { executionId: "e-1", accountAlias: "idem", jobId: "j", enqueuedAt: 1 };
    await dispatcher(key).enqueue(item);
    await dispatcher(key).enqueue(item);
    expect((await dispatcher(key).snapshot()).queued).toEqual([item]);
    await dispatcher(key).remove("e-1");
    expect((await dispatcher(key).snapshot()).queued).toEqual([]);
  });
});

describe("the account's concurrency limit across its dispatchers", () => {
  const slotCount = async (alias: string) =>
    (await env.DB.prepare("SELECT COUNT(*) AS n FROM account_slots WHERE account_alias = ?").bind(alias).first<{ n: number }>())!.n;

  it("counts the shared pool's leases and every location's against one limit", async () => {
    const limit = Number(env.ACCOUNT_CONCURRENCY);
    const pool = await newAgent(null);
    const edge = await newAgent("xacct", { location: "dc1" });
    // No default-location agent, and the account lets such work fall back to the shared pool.
    expect((await api("PUT", "/accounts/xacct/settings", { token: await token(["xacct"], "admin"), body: { sharedPoolFallback: true } })).status).toBe(200);
    const plain = await newJob("xacct");
    const located = await newJob("xacct", { location: "dc1" });
    for (let i = 0; i < limit; i++) await newExecution("xacct", plain);
    const running = await drain(pool, limit);
    expect(await slotCount("xacct")).toBe(limit);

    const waiting = await newExecution("xacct", located);
    const polling = lease(edge, 20_000);
    await untilWaiting(dispatcherKey("xacct", "dc1"), 1);
    await sleep(300);
    // The dc1 queue has an agent and work, but the account already runs `limit` executions elsewhere.
    expect((await execution(waiting)).status).toBe("PENDING");
    expect((await dispatcher(dispatcherKey("xacct", "dc1")).snapshot()).queued.map((q) => q.executionId)).toEqual([waiting]);

    // One ends in the shared pool: the dc1 dispatcher notices (it re-counts while agents wait).
    const freed = Date.now();
    await finish(pool, running[0]!);
    const r = await polling;
    expect(r.status).toBe(200);
    expect(r.json.executionId).toBe(waiting);
    console.log(`slot freed in another dispatcher → lease: ${Date.now() - freed} ms`);
    expect(await slotCount("xacct")).toBe(limit);
  });

  it("two dispatchers racing for the account's last slot: exactly one wins", async () => {
    const limit = Number(env.ACCOUNT_CONCURRENCY);
    const home = await newAgent("race");
    const edge = await newAgent("race", { location: "dc1" });
    const plain = await newJob("race");
    const located = await newJob("race", { location: "dc1" });
    for (let i = 0; i < limit - 1; i++) await newExecution("race", plain);
    await drain(home, limit - 1);
    const polls = [lease(home, 2_500), lease(edge, 2_500)];
    await untilWaiting(dispatcherKey("race", null), 1);
    await untilWaiting(dispatcherKey("race", "dc1"), 1);
    await Promise.all([newExecution("race", plain), newExecution("race", located)]);
    const answers = await Promise.all(polls);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 204]);
    expect(await slotCount("race")).toBe(limit);
  });

  it("claims are atomic in D1: of many at once, exactly `limit` are taken", async () => {
    const now = Date.now();
    const claims = await Promise.all(Array.from({ length: 25 }, (_, i) => claimSlot(env.DB, `claim-${i}`, "claims", 10, now)));
    expect(claims.filter((c) => c === "taken")).toHaveLength(10);
    expect(claims.filter((c) => c === "full")).toHaveLength(15);
    // Claiming again for an execution that has a slot does not take another.
    const holder = claims.findIndex((c) => c === "taken");
    expect(await claimSlot(env.DB, `claim-${holder}`, "claims", 10, now)).toBe("held");
    await releaseSlots(env.DB, [`claim-${holder}`]);
    expect(await claimSlot(env.DB, "claim-late", "claims", 10, now)).toBe("taken");
    // A slot of its own that no longer counts (older than the grace, no lease in the index) is no
    // free pass: it is renewed only when the account has room.
    const later = now + SLOT_GRACE_MS + 1;
    expect(await claimSlot(env.DB, "claim-late", "claims", 10, later)).toBe("taken");
    expect(await claimSlot(env.DB, "claim-other", "claims", 11, later)).toBe("taken"); // the account now holds 11
    await env.DB.prepare("UPDATE account_slots SET taken_time = ? WHERE account_alias = 'claims'").bind(later).run();
    await env.DB.prepare("UPDATE account_slots SET taken_time = ? WHERE execution_id = 'claim-late'").bind(now).run();
    expect(await claimSlot(env.DB, "claim-late", "claims", 10, later)).toBe("full");
  });

  it("a slot whose release was lost stops counting once the index shows no lease and the grace is over", async () => {
    const now = Date.now();
    await env.DB.prepare("INSERT INTO account_slots (execution_id, account_alias, taken_time) VALUES ('orphan', 'orphans', ?)")
      .bind(now - SLOT_GRACE_MS - 1)
      .run();
    await env.DB.prepare("INSERT INTO account_slots (execution_id, account_alias, taken_time) VALUES ('fresh', 'orphans', ?)").bind(now).run();
    expect((await slotsHeld(env.DB, ["orphans"], now)).get("orphans")).toBe(1);
  });
});
