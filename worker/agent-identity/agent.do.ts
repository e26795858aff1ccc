import { DurableObject } from "cloudflare:workers";
import { getAgent, setAgentConcurrency, touchAgent } from "../db/agents";
import { storedAgent, type AgentRpc, type AuthAnswer, type StoredAgent } from "../domain/agent-identity";
import { seenWriteDue } from "../domain/contracts";
import { hexToBytes } from "../lib/encoding";
import { log } from "../lib/log";

const KEY = "agent";

/**
 * One per agent (`idFromName(agentId)`): the agent's identity, so that authenticating an agent call
 * is one request to this object instead of a D1 read, and its `lastSeen` reaches D1 at most every
 * SEEN_WRITE_MS instead of every 10 s. Objects scale out with the agents; D1 has one writer.
 *
 * Its storage holds the agent's row (what `StoredAgent` names); the D1 row stays the record that
 * lists, routing and metrics read. Registration initialises the object; an agent registered
 * before the object existed is loaded from D1 on its first call and kept. Revocation reaches this
 * object before the revoking request answers (domain/agents.ts), so the next call is refused.
 */
export class Agent extends DurableObject<Env> implements AgentRpc {
  /** The row, once read from storage or D1 by this instance. */
  private row: StoredAgent | null = null;
  private loading: Promise<StoredAgent | null> | null = null;
  /**
   * When this instance last wrote `lastSeen` to D1 (0: not yet). Memory only: after an eviction
   * the first call writes, which is never too often. Tests age it (test/worker/agent-fixtures.ts).
   */
  seenWrittenAt = 0;

  async authenticate(agentId: string, presentedHash: Uint8Array): Promise<AuthAnswer> {
    const a = await this.known(agentId);
    // Compare even for an unknown agent, so the answer takes the same time either way.
    const stored = a ? hexToBytes(a.credential_hash) : new Uint8Array(presentedHash.length);
    const same = stored.length === presentedHash.length && crypto.subtle.timingSafeEqual(stored, presentedHash);
    if (!a || !same) return { ok: false, reason: "invalid" };
    if (a.revoked_time !== null) return { ok: false, reason: "revoked" };
    this.seen(a.id, Date.now());
    return { ok: true, agent: { id: a.id, account_alias: a.account_alias, name: a.name, location: a.location, concurrency: a.concurrency } };
  }

  async init(row: StoredAgent, seenAt: number): Promise<void> {
    await this.ctx.storage.put(KEY, row);
    this.row = row;
    // Registration wrote `last_seen` with the row.
    this.seenWrittenAt = seenAt;
  }

  async revoke(row: StoredAgent, at: number): Promise<void> {
    const a = (await this.known(row.id)) ?? row;
    if (a.revoked_time !== null) return;
    const revoked = { ...a, revoked_time: at };
    await this.ctx.storage.put(KEY, revoked);
    this.row = revoked;
  }

  async setConcurrency(agentId: string, concurrency: number): Promise<void> {
    const a = await this.known(agentId);
    if (!a || a.concurrency === concurrency) return;
    // D1 first: if it fails, nothing changed here either, and the next poll tries again.
    await setAgentConcurrency(this.env.DB, agentId, concurrency);
    const changed = { ...(this.row ?? a), concurrency };
    await this.ctx.storage.put(KEY, changed);
    this.row = changed;
  }

  /** The agent's row: memory, else storage, else (once) D1. Null for an agent that does not exist. */
  private async known(agentId: string): Promise<StoredAgent | null> {
    if (this.row) return this.row;
    // Concurrent first calls share one load; a revocation arriving meanwhile waits for it too.
    this.loading ??= this.load(agentId).finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  private async load(agentId: string): Promise<StoredAgent | null> {
    const kept = await this.ctx.storage.get<StoredAgent>(KEY);
    if (kept) return (this.row = kept);
    // Registered before agents had objects: the one D1 read, then kept. An unknown id is not kept
    // (nothing is stored for ids that were never an agent's).
    const d1 = await getAgent(this.env.DB, agentId);
    if (!d1) return null;
    const row = storedAgent(d1);
    await this.ctx.storage.put(KEY, row);
    this.seenWrittenAt = Math.max(this.seenWrittenAt, d1.last_seen ?? 0);
    return (this.row = row);
  }

  /** Records a sighting in D1 when the last write is SEEN_WRITE_MS old, after the answer. */
  private seen(agentId: string, now: number): void {
    if (!seenWriteDue(this.seenWrittenAt, now)) return;
    const before = this.seenWrittenAt;
    this.seenWrittenAt = now;
    this.ctx.waitUntil(
      touchAgent(this.env.DB, agentId, now).catch((e) => {
        // The next call tries again.
        if (this.seenWrittenAt === now) this.seenWrittenAt = before;
        log.error("agent: lastSeen update failed", { agentId, error: e });
      }),
    );
  }
}
