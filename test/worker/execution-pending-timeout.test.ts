import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { dispatcherStub } from "../../worker/domain/dispatch";
import { dispatcherKey } from "../../worker/domain/contracts";
import { api, token } from "./helpers";
import { AGENT, alarmOf, fakeClock, fire, newJob, ref, start, stub } from "./execution-fixtures";

/**
 * The pending timeout: a PENDING execution no agent leases within the account's setting (default
 * 60 minutes) ends INIT_FAILURE with reason no_agent, from the alarm's one slot. Time is moved
 * with a faked Date (it reaches the objects: they run in this isolate).
 */
const SHORT = "pt-short"; // pendingTimeoutMinutes: 1
const PLAIN = "pt-default"; // never changed its settings
let shortJob: string;
let plainJob: string;

beforeAll(async () => {
  const r = await api("PUT", `/accounts/${SHORT}/settings`, { token: await token([SHORT], "admin"), body: { pendingTimeoutMinutes: 1 } });
  expect(r.status, r.text).toBe(200);
  shortJob = await newJob(SHORT); // TTL 180 minutes: the pending timeout comes first
  plainJob = await newJob(PLAIN);
});
const { t0, at } = fakeClock();
const queued = async () => (await dispatcherStub(env, dispatcherKey(null, null)).snapshot()).queued.map((q) => q.executionId);

describe("pending timeout", () => {
  it("ends a PENDING execution INIT_FAILURE (no_agent) at the account's setting, and takes it off the queue", async () => {
    const id = await start(SHORT, shortJob);
    expect(await alarmOf(id)).toBe(t0() + 60_000);
    at(59_000);
    await fire(id);
    expect((await stub(id).view()).status).toBe("PENDING");
    at(60_001);
    await fire(id);
    const v = await stub(id).view();
    expect(v).toMatchObject({ status: "INIT_FAILURE", reason: "no_agent", waiting_reason: null });
    expect(v.timers[0]!.end).toBe(t0() + 60_001);
    expect(await queued()).not.toContain(id);
    expect(await alarmOf(id)).toBeNull();
    const log = (await stub(id).logChunk(undefined, 0)).text;
    expect(log).toMatch(/\[runner\] execution INIT_FAILURE \(no_agent\): no agent took it within 1 minute; last: no agent registered for the shared pool/);
  });

  it("a lease before the timeout cancels it", async () => {
    const id = await start(SHORT, shortJob);
    at(30_000);
    expect(await stub(id).grantLease(AGENT)).not.toBeNull();
    at(35_000);
    await stub(id).heartbeat(AGENT, await ref(id));
    expect(await alarmOf(id)).not.toBe(t0() + 60_000); // the lease's deadlines, not the pending timeout
    at(60_001);
    await fire(id);
    expect((await stub(id).view()).status).toBe("INITIALIZING");
  });

  it("a lease lost before the playbook started gives the new PENDING spell the whole timeout again", async () => {
    const id = await start(SHORT, shortJob);
    at(50_000);
    await stub(id).grantLease(AGENT); // never acknowledged: back to PENDING after LEASE_ACK_MS
    at(61_000);
    await fire(id);
    expect((await stub(id).view()).status).toBe("PENDING");
    // The new spell runs its whole minute from 61 s (not from the start at 0): still waiting at
    // 61 + 59 s, given up at 61 + 60 s.
    at(61_000 + 59_000);
    await fire(id).catch(() => {});
    expect((await stub(id).view()).status).toBe("PENDING");
    at(61_000 + 60_001);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "INIT_FAILURE", reason: "no_agent" });
  });

  it("defaults to 60 minutes, and a restart of the INIT_FAILURE waits again", async () => {
    const id = await start(PLAIN, plainJob);
    expect(await alarmOf(id)).toBe(t0() + 60 * 60_000);
    at(60 * 60_000 + 1);
    await fire(id);
    expect(await stub(id).view()).toMatchObject({ status: "INIT_FAILURE", reason: "no_agent" });
    const r = await api("POST", `/jobs/${PLAIN}/${plainJob}/executions/${id}/restart`, { token: await token([PLAIN], "user"), body: {} });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ status: "PENDING", attempt: 2 });
    expect(await alarmOf(id)).toBe(Date.now() + 60 * 60_000);
    await stub(id).kill({ accountAlias: PLAIN }); // nothing left queued
  });

  it("the TTL still wins when it comes first", async () => {
    const ttlJob = await newJob(SHORT, { executionTtl: 1 }); // TTL and pending timeout both 1 minute: TTL at the same instant
    const id = await start(SHORT, ttlJob);
    at(60_001);
    await fire(id);
    expect((await stub(id).view()).status).toBe("INIT_FAILURE"); // the pending timeout is no later than the TTL
    const later = await newJob(SHORT, { executionTtl: 1 });
    await api("PUT", `/accounts/${SHORT}/settings`, { token: await token([SHORT], "admin"), body: { pendingTimeoutMinutes: 2 } });
    const id2 = await start(SHORT, later);
    expect(await alarmOf(id2)).toBe(Date.now() + 60_000);
    at(120_002);
    await fire(id2);
    expect(await stub(id2).view()).toMatchObject({ status: "STOPPED", reason: "ttl_expired" });
    await api("PUT", `/accounts/${SHORT}/settings`, { token: await token([SHORT], "admin"), body: { pendingTimeoutMinutes: 1 } });
  });
});
