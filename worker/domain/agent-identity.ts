/**
 * What crosses between the Worker and an agent's `Agent` object (worker/agent-identity/agent.do.ts),
 * and the one way to reach it. The object is the agent's identity on the hot path: every agent call
 * is authenticated by it (one object request, no D1 read), and it writes the agent's `lastSeen` to
 * D1, throttled. D1's `agents` row stays the record that lists, routing and metrics read.
 */
import type { AgentRow } from "../db/agents";

/** What the object keeps of the agent's row: what authentication and the agent routes need. */
export type StoredAgent = Pick<AgentRow, "id" | "account_alias" | "name" | "location" | "concurrency" | "credential_hash" | "revoked_time">;

/** The authenticated agent (`c.var.agent`): never its credential hash. */
export type AgentIdentity = Omit<StoredAgent, "credential_hash" | "revoked_time">;

/** `invalid`: unknown agent or wrong secret (one answer, so neither is told apart); `revoked`: revoked. */
export type AuthAnswer = { ok: true; agent: AgentIdentity } | { ok: false; reason: "invalid" | "revoked" };

export interface AgentRpc {
  /**
   * Checks the SHA-256 of a presented credential against the agent's (constant time) and records
   * the sighting. An agent the object does not know yet (registered before objects held
   * identities) is loaded from D1 once.
   */
  authenticate(agentId: string, presentedHash: Uint8Array): Promise<AuthAnswer>;
  /** Registration: the object starts out knowing the agent (no D1 read on its first call). */
  init(row: StoredAgent, seenAt: number): Promise<void>;
  /** Revocation: from the moment this answers, the credential is refused. `row`: the D1 row, if the object never loaded it. */
  revoke(row: StoredAgent, at: number): Promise<void>;
  /** The concurrency the agent's polls report, kept here and in D1. */
  setConcurrency(agentId: string, concurrency: number): Promise<void>;
}

export const storedAgent = (a: AgentRow): StoredAgent => ({
  id: a.id,
  account_alias: a.account_alias,
  name: a.name,
  location: a.location,
  concurrency: a.concurrency,
  credential_hash: a.credential_hash,
  revoked_time: a.revoked_time,
});

/** The agent's object: one per agent, named by its id (which its credential carries). */
export function agentIdentity(env: Env, agentId: string) {
  return env.AGENT.get(env.AGENT.idFromName(agentId));
}
