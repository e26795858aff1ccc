/**
 * The `Agent` object (worker/agent-identity/agent.do.ts): every agent call is authenticated by the
 * agent's object instead of a D1 read; agents registered before objects held identities are loaded
 * from D1 once; revocation reaches the object before it answers; lastSeen still reaches D1 often
 * enough that a polling agent stays online.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { agentIdentity, type StoredAgent } from "../../worker/domain/agent-identity";
import { isOnline, ONLINE_WINDOW_MS, SEEN_WRITE_MS, seenWriteDue } from "../../worker/domain/contracts";
import { hashSecret, randomSecret } from "../../worker/lib/hash";
import { installMeter, rawStub, type Meter } from "../../worker/lib/meter";
import type { Agent } from "../../worker/index";
import { MAX_POLL_WAIT_MS } from "../../worker/schemas/agent";
import { ageAgent, call, lastSeenInD1, lease, newAgent, sleep, type TestAgent } from "./agent-fixtures";
import { api, token } from "./helpers";

let meter: Meter;
beforeAll(() => {
  meter = installMeter(env as unknown as Record<string, unknown>);
});

/** An agent as one registered before this change left it: its row in D1, its object empty. */
async function agentInD1Only(alias: string, revokedTime: number | null = null): Promise<TestAgent> {
  const id = crypto.randomUUID();
  const credential = `rac_${id}_${randomSecret()}`;
  await env.DB.prepare(
    `INSERT INTO agents (id, account_alias, name, location, version, hostname, concurrency, credential_hash, token_id, created_time, last_seen, revoked_time)
     VALUES (?, ?, 'old', NULL, '0.1.0', 'h.example', 1, ?, NULL, ?, ?, ?)`,
  )
    .bind(id, alias, await hashSecret(credential), Date.now() - 86_400_000, Date.now() - 3_600_000, revokedTime)
    .run();
  return { agentId: id, credential, location: null };
}

/** What the agent's object keeps in its storage (null: nothing). */
const kept = (agentId: string) =>
  runInDurableObject(rawStub(agentIdentity(env, agentId)), async (_o: Agent, state) => (await state.storage.get<StoredAgent>("agent")) ?? null);

/** Counts what `fn` costs, once its background writes have landed. */
async function counted(fn: () => Promise<unknown>) {
  await sleep(100);
  meter.reset();
  await fn();
  await sleep(200);
  return meter.snapshot();
}

const expect401 = (r: { status: number; json: any }, detail: RegExp) => {
  expect(r.status).toBe(401);
  expect(r.json.detail).toMatch(detail);
};

describe("the Agent object", () => {
  it("authenticates an agent registered before it existed: loaded from D1 on the first call, then no D1 read", async () => {
    const old = await agentInD1Only("ident1");
    expect(await kept(old.agentId)).toBeNull();

    const first = await counted(async () => expect((await lease(old, 0)).status).toBe(204));
    expect(first.d1.byStatement["SELECT agents"]).toBe(1);
    expect(await kept(old.agentId)).toMatchObject({ id: old.agentId, account_alias: "ident1", revoked_time: null });

    const next = await counted(async () => {
      expect((await lease(old, 0)).status).toBe(204);
      expect((await call(old, "POST", `/agent/executions/${crypto.randomUUID()}/heartbeat`, { attempt: 1, leaseId: "x" })).status).toBe(409);
    });
    expect(next.objects.byMethod["AGENT.authenticate"]).toBe(2);
    expect(next.d1.byStatement["SELECT agents"] ?? 0).toBe(0);

    // The hash is still compared: the right agent with a wrong secret is refused.
    const wrong = { ...old, credential: `rac_${old.agentId}_${randomSecret()}` };
    expect401(await lease(wrong, 0), /not valid/);
  });

  it("a registered agent's object knows it from registration: not even its first call reads D1", async () => {
    const a = await newAgent("ident2");
    expect(await kept(a.agentId)).toMatchObject({ id: a.agentId, account_alias: "ident2", concurrency: 1 });
    const first = await counted(async () => expect((await lease(a, 0)).status).toBe(204));
    expect(first.d1.byStatement["SELECT agents"] ?? 0).toBe(0);
  });

  it("an unknown agent id is refused and leaves nothing in its object", async () => {
    const ghost: TestAgent = { agentId: crypto.randomUUID(), credential: "", location: null };
    ghost.credential = `rac_${ghost.agentId}_${randomSecret()}`;
    expect401(await lease(ghost, 0), /not valid/);
    expect(await kept(ghost.agentId)).toBeNull();
  });

  it("an agent revoked before its object existed is refused by the lazy load", async () => {
    const old = await agentInD1Only("ident3", Date.now() - 1_000);
    expect401(await lease(old, 0), /revoked/);
    expect((await kept(old.agentId))!.revoked_time).not.toBeNull();
  });

  it("revocation reaches the object before it answers: the very next call is 401, whether the object had loaded the agent or not", async () => {
    const admin = await token(["ident4"], "admin");
    const warm = await newAgent("ident4");
    expect((await lease(warm, 0)).status).toBe(204);
    const cold = await agentInD1Only("ident4");
    for (const a of [warm, cold]) {
      expect((await api("DELETE", `/minions/ident4/${a.agentId}`, { token: admin })).status).toBe(204);
      expect401(await lease(a, 0), /revoked/);
      expect401(await call(a, "POST", `/agent/executions/${crypto.randomUUID()}/heartbeat`, { attempt: 1, leaseId: "x" }), /revoked/);
      const row = await env.DB.prepare("SELECT revoked_time FROM agents WHERE id = ?").bind(a.agentId).first<{ revoked_time: number | null }>();
      expect(row!.revoked_time).toBeGreaterThan(0);
      // Revoked once: a second revocation finds nothing.
      expect((await api("DELETE", `/minions/ident4/${a.agentId}`, { token: admin })).status).toBe(404);
    }
  });

  it("lastSeen reaches D1 at most every 30 s, so an agent polling every 25 s stays online", async () => {
    const a = await newAgent("ident5");
    const online = async () => (await api("GET", `/minions/ident5/${a.agentId}`, { token: await token(["ident5"], "viewer") })).json.online as boolean;

    // The last write 25 s ago (the previous poll's): this poll writes nothing, and the agent is online.
    const before = Date.now() - MAX_POLL_WAIT_MS;
    await ageAgent(a.agentId, before);
    expect((await lease(a, 0)).status).toBe(204);
    await sleep(200);
    expect(await lastSeenInD1(a.agentId)).toBe(before);
    expect(await online()).toBe(true);

    // The next poll, 50 s after that write: it writes, and the agent never looked offline.
    const called = Date.now();
    await ageAgent(a.agentId, called - 2 * MAX_POLL_WAIT_MS);
    expect(await online()).toBe(true);
    expect((await lease(a, 0)).status).toBe(204);
    let seen = 0;
    for (let i = 0; i < 200 && (seen = (await lastSeenInD1(a.agentId)) ?? 0) < called; i++) await sleep(10);
    expect(seen).toBeGreaterThanOrEqual(called);
    expect(await online()).toBe(true);
  });

  it("the throttle and the online window agree: polls every 25 s (plus up to 5 s of round trips) keep D1's lastSeen within the window", () => {
    expect(SEEN_WRITE_MS).toBe(30_000);
    for (const roundTrip of [0, 1_000, 2_500]) {
      let written = 0;
      let d1 = 0;
      let writes = 0;
      for (let t = 0; t < 3_600_000; t += MAX_POLL_WAIT_MS + roundTrip) {
        // Just before this poll, D1's lastSeen is at its oldest.
        if (t > 0) expect(isOnline(d1, t), `poll at ${t} ms, round trip ${roundTrip} ms`).toBe(true);
        if (seenWriteDue(written, t)) {
          written = d1 = t;
          writes++;
        }
      }
      // Every other poll writes: half of an untrottled agent's writes.
      expect(writes).toBeLessThanOrEqual(Math.ceil(3_600_000 / (2 * (MAX_POLL_WAIT_MS + roundTrip))) + 1);
      expect(ONLINE_WINDOW_MS).toBeGreaterThanOrEqual(SEEN_WRITE_MS + MAX_POLL_WAIT_MS + 2 * roundTrip);
    }
  });

  it("a poll reporting another concurrency updates the object and D1, once", async () => {
    const a = await newAgent("ident6");
    const concurrencyInD1 = async () =>
      (await env.DB.prepare("SELECT concurrency FROM agents WHERE id = ?").bind(a.agentId).first<{ concurrency: number }>())!.concurrency;
    expect((await call(a, "POST", "/agent/lease", { waitMs: 0, concurrency: 3 })).status).toBe(204);
    for (let i = 0; i < 200 && (await concurrencyInD1()) !== 3; i++) await sleep(10);
    expect(await concurrencyInD1()).toBe(3);
    expect((await kept(a.agentId))!.concurrency).toBe(3);
    const again = await counted(async () => expect((await call(a, "POST", "/agent/lease", { waitMs: 0, concurrency: 3 })).status).toBe(204));
    expect(again.d1.byStatement["UPDATE agents"] ?? 0).toBe(0);
    expect(again.objects.byMethod["AGENT.setConcurrency"] ?? 0).toBe(0);
  });
});
