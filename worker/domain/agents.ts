import {
  getAgent,
  insertAgent,
  insertToken,
  listLiveAgents,
  listLiveTokens,
  revokeAgent,
  revokeToken,
  findLiveTokenByHash,
  type AgentRow,
  type TokenRow,
} from "../db/agents";
import { leasedExecutionsOf } from "../db/executions";
import { verifyToken } from "../lib/auth";
import { hashSecret, randomSecret } from "../lib/hash";
import { log } from "../lib/log";
import { forbidden, notFound, unauthorized } from "../lib/problem";
import type { Actor, Origin } from "../schemas/audit";
import type { Page, PageParams } from "../schemas/common";
import type { LeaseBody } from "../schemas/execution";
import { MAX_POLL_WAIT_MS, type AgentView, type RegisterAnswer, type RegisterBody, type TokenView } from "../schemas/agent";
import { agentIdentity, storedAgent, type AgentIdentity } from "./agent-identity";
import { auditStatement } from "./audit";
import { HEARTBEAT_INTERVAL_MS, isOnline, lostAgentWindowMs, ONLINE_WINDOW_MS } from "./contracts";
import { agentDispatcherKey, dispatcherStub } from "./dispatch";
import { executionClient } from "./execution-client";

/** An agent is online when it was seen this recently (one definition, in contracts.ts). */
export { ONLINE_WINDOW_MS };

// ---- registration tokens ------------------------------------------------------------------

function tokenView(t: TokenRow): TokenView {
  return { id: t.id, name: t.name, description: t.description, location: t.location, createdTime: t.created_time };
}

export async function createRegistrationToken(
  env: Env,
  alias: string,
  input: { name?: string | null; description?: string | null; location?: string | null },
  actor: Actor,
): Promise<TokenView & { token: string }> {
  const token = `rrt_${randomSecret()}`;
  const row: TokenRow = {
    id: crypto.randomUUID(),
    account_alias: alias,
    token_hash: await hashSecret(token),
    name: input.name || null,
    description: input.description || null,
    location: input.location || null,
    created_time: Date.now(),
    revoked_time: null,
  };
  // The token itself (and its hash) never goes in the audit log: its id, name and location do.
  const audit = auditStatement(env.DB, actor, {
    accountAlias: alias,
    action: "registrationToken.created",
    resource: { type: "registrationToken", id: row.id },
    details: { name: row.name, location: row.location },
  });
  await insertToken(env.DB, row, audit);
  return { ...tokenView(row), token };
}

export async function listRegistrationTokens(env: Env, alias: string, p: PageParams): Promise<Page<TokenView>> {
  const page = await listLiveTokens(env.DB, alias, p);
  return { ...page, results: page.results.map(tokenView) };
}

/** Agents already registered with the token keep working; only new registrations stop. */
export async function revokeRegistrationToken(env: Env, alias: string, tokenId: string, actor: Actor): Promise<void> {
  const audit = auditStatement(
    env.DB,
    actor,
    { accountAlias: alias, action: "registrationToken.revoked", resource: { type: "registrationToken", id: tokenId } },
    { ifChanged: true },
  );
  if (!(await revokeToken(env.DB, alias, tokenId, Date.now(), audit))) throw notFound();
}

// ---- registration -------------------------------------------------------------------------

/**
 * Registers an agent: with a registration token it joins the token's account (the token's
 * location wins over the one asked for); without one, the bearer must be an operator (accounts
 * "*", role admin) and the agent joins the shared pool. The credential is answered once.
 * The audit log names who registered it: the operator, or (with a token) the new agent itself.
 */
export async function registerAgent(env: Env, body: RegisterBody, bearer: string | null, origin: Origin): Promise<RegisterAnswer> {
  const id = crypto.randomUUID();
  let accountAlias: string | null;
  let location: string | null;
  let tokenId: string | null = null;
  let actor: Actor = { ...origin, subject: id, kind: "agent" };
  if (body.token) {
    const t = await findLiveTokenByHash(env.DB, await hashSecret(body.token));
    if (!t) throw unauthorized("The registration token is not valid or was revoked.");
    accountAlias = t.account_alias;
    location = t.location ?? body.location ?? null;
    tokenId = t.id;
  } else {
    if (!bearer) throw unauthorized("A registration token (body 'token') or an operator token (bearer) is required.", true);
    const p = await verifyToken(env, bearer);
    if (p.accounts !== "*" || p.role !== "admin") {
      throw forbidden('Only an operator token (accounts "*", role admin) registers a shared-pool agent; others need a registration token.');
    }
    accountAlias = null;
    location = body.location ?? null;
    actor = { ...origin, subject: p.sub, kind: "operator" };
  }
  const credential = `rac_${id}_${randomSecret()}`;
  const now = Date.now();
  const name = body.name || body.hostname || `agent-${id.slice(0, 8)}`;
  const audit = auditStatement(env.DB, actor, {
    accountAlias,
    action: "agent.registered",
    resource: { type: "agent", id },
    details: { name, location, hostname: body.hostname ?? null, tokenId },
  });
  const row: AgentRow = {
    id,
    account_alias: accountAlias,
    name,
    location,
    version: body.version ?? null,
    hostname: body.hostname ?? null,
    concurrency: body.concurrency ?? 1,
    credential_hash: await hashSecret(credential),
    token_id: tokenId,
    created_time: now,
    last_seen: now,
    revoked_time: null,
  };
  await insertAgent(env.DB, row, audit);
  // The agent's object knows it from its first call. Should this fail, that call loads it from D1.
  await agentIdentity(env, id)
    .init(storedAgent(row), now)
    .catch((e) => log.error("agent: identity init failed", { agentId: id, error: e }));
  return {
    agentId: id,
    credential,
    accountAlias,
    location,
    shared: accountAlias === null,
    leaseTtlMs: lostAgentWindowMs(env),
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    pollWaitMs: MAX_POLL_WAIT_MS,
  };
}

// ---- work --------------------------------------------------------------------------------

/**
 * The long poll: a lease for the agent as soon as its dispatcher grants one, else null after the
 * wait. A poll whose request went away is never granted one (the dispatcher asks `alive` right
 * before granting); if it goes away between the grant and the answer, the lease is handed back.
 */
export async function pollForLease(
  env: Env,
  agent: AgentIdentity,
  ask: { capacity?: number; concurrency?: number; waitMs?: number },
  signal: AbortSignal,
  ctx: { waitUntil(p: Promise<unknown>): void },
): Promise<LeaseBody | null> {
  // The concurrency given at registration may not be the one the agent runs with (`run --concurrency`).
  if (ask.concurrency !== undefined && ask.concurrency !== agent.concurrency) {
    ctx.waitUntil(
      agentIdentity(env, agent.id)
        .setConcurrency(agent.id, ask.concurrency)
        .catch((e) => log.error("agent: concurrency update failed", { agentId: agent.id, error: e })),
    );
  }
  if (ask.capacity === 0) return null;
  const wait = Math.min(ask.waitMs ?? MAX_POLL_WAIT_MS, MAX_POLL_WAIT_MS);
  // RPC typing maps the lease's `unknown` extra vars to `never`; the value is the object's LeaseBody.
  const lease = (await dispatcherStub(env, agentDispatcherKey(agent)).poll({ agentId: agent.id, alive: () => !signal.aborted }, wait)) as LeaseBody | null;
  if (lease && signal.aborted) {
    ctx.waitUntil(
      executionClient(env, lease.executionId)
        .release(agent.id, { attempt: lease.attempt, leaseId: lease.leaseId })
        .catch(() => undefined),
    );
    return null;
  }
  return lease;
}

// ---- the minions API ----------------------------------------------------------------------

function agentView(a: AgentRow, running: string[], now: number): AgentView {
  return {
    id: a.id,
    name: a.name,
    location: a.location,
    version: a.version,
    hostname: a.hostname,
    concurrency: a.concurrency,
    online: isOnline(a.last_seen, now),
    lastSeen: a.last_seen,
    createdTime: a.created_time,
    runningExecutions: running,
  };
}

/** Whose agents: an account alias, or null for the shared pool (the operator's). */
export type AgentPool = string | null;

export async function listAgents(env: Env, pool: AgentPool, p: PageParams): Promise<Page<AgentView>> {
  const page = await listLiveAgents(env.DB, pool, p);
  const running = await leasedExecutionsOf(
    env.DB,
    page.results.map((r) => r.id),
  );
  const now = Date.now();
  return { ...page, results: page.results.map((r) => agentView(r, running.get(r.id) ?? [], now)) };
}

export async function getAgentView(env: Env, pool: AgentPool, agentId: string): Promise<AgentView> {
  const a = await getAgent(env.DB, agentId);
  // A shared agent is no account's (its alias is null), so no account's route finds it.
  if (!a || a.account_alias !== pool || a.revoked_time !== null) throw notFound();
  const running = await leasedExecutionsOf(env.DB, [a.id]);
  return agentView(a, running.get(a.id) ?? [], Date.now());
}

/**
 * Revokes an agent of the pool: its credential stops working at once (its `Agent` object, which
 * every call asks, is told first), its waiting polls are dropped, and every lease it holds is lost
 * at once (a run that started ends FAILURE agent_revoked; one that had not goes back to PENDING).
 */
export async function revokeAgentAndLeases(env: Env, pool: AgentPool, agentId: string, actor: Actor): Promise<void> {
  const a = await getAgent(env.DB, agentId);
  if (!a || a.account_alias !== pool || a.revoked_time !== null) throw notFound();
  const now = Date.now();
  // The object first: if D1 then fails, the credential is refused already and a retry finishes.
  await agentIdentity(env, agentId).revoke(storedAgent(a), now);
  const audit = auditStatement(
    env.DB,
    actor,
    { accountAlias: pool, action: "agent.revoked", resource: { type: "agent", id: agentId }, details: { name: a.name, location: a.location } },
    { ifChanged: true },
  );
  if (!(await revokeAgent(env.DB, pool, agentId, now, audit))) throw notFound();
  // First the dispatcher (no new lease can reach the agent), then the leases it already holds.
  await dispatcherStub(env, agentDispatcherKey(a)).agentRevoked(agentId);
  const held = (await leasedExecutionsOf(env.DB, [agentId])).get(agentId) ?? [];
  const results = await Promise.allSettled(held.map((id) => executionClient(env, id).agentRevoked(agentId)));
  // A lease that could not be dropped here still expires: the agent can no longer heartbeat.
  for (const [i, r] of results.entries()) if (r.status === "rejected") log.error("agent: agentRevoked failed", { executionId: held[i], error: r.reason });
}
