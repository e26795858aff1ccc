import type { MiddlewareHandler } from "hono";
import {
  getAgent,
  insertAgent,
  insertToken,
  listLiveAgents,
  listLiveTokens,
  revokeAgent,
  revokeToken,
  setAgentConcurrency,
  touchAgent,
  findLiveTokenByHash,
  type AgentRow,
  type TokenRow,
} from "../db/agents";
import { leasedExecutionsOf } from "../db/executions";
import { verifyToken, type AuthVars } from "../lib/auth";
import { forbidden, notFound, unauthorized } from "../lib/problem";
import type { Page, PageParams } from "../schemas/common";
import type { LeaseBody } from "../schemas/execution";
import { MAX_POLL_WAIT_MS, type AgentView, type RegisterAnswer, type RegisterBody, type TokenView } from "../schemas/agent";
import { HEARTBEAT_INTERVAL_MS, LEASE_TTL_MS } from "./contracts";
import { agentDispatcherKey, dispatcherStub } from "./dispatch";
import { executionClient } from "./execution-client";

/** An agent is online when it was seen this recently (a long poll renews it at least every 25 s). */
export const ONLINE_WINDOW_MS = 60_000;
/** lastSeen is written at most this often per agent, so polls and uploads don't turn into D1 writes. */
export const SEEN_THROTTLE_MS = 10_000;

export type AgentEnv = { Bindings: Env; Variables: AuthVars & { agent: AgentRow } };

// ---- secrets ------------------------------------------------------------------------------

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** 32 random bytes (256 bits) from the platform CSPRNG, base64url. */
function randomSecret(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** SHA-256 hex: what is stored of a token or credential. High-entropy secrets need no slow hash. */
export async function hashSecret(text: string): Promise<string> {
  return [...(await sha256(text))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

const CREDENTIAL_RE = /^rac_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/;

// ---- registration tokens ------------------------------------------------------------------

function tokenView(t: TokenRow): TokenView {
  return { id: t.id, name: t.name, description: t.description, location: t.location, createdTime: t.created_time };
}

export async function createRegistrationToken(
  env: Env,
  alias: string,
  input: { name?: string | null; description?: string | null; location?: string | null },
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
  await insertToken(env.DB, row);
  return { ...tokenView(row), token };
}

export async function listRegistrationTokens(env: Env, alias: string, p: PageParams): Promise<Page<TokenView>> {
  const page = await listLiveTokens(env.DB, alias, p);
  return { ...page, results: page.results.map(tokenView) };
}

/** Agents already registered with the token keep working; only new registrations stop. */
export async function revokeRegistrationToken(env: Env, alias: string, tokenId: string): Promise<void> {
  if (!(await revokeToken(env.DB, alias, tokenId, Date.now()))) throw notFound();
}

// ---- registration -------------------------------------------------------------------------

/**
 * Registers an agent: with a registration token it joins the token's account (the token's
 * location wins over the one asked for); without one, the bearer must be an operator (accounts
 * "*", role admin) and the agent joins the shared pool. The credential is answered once.
 */
export async function registerAgent(env: Env, body: RegisterBody, bearer: string | null): Promise<RegisterAnswer> {
  let accountAlias: string | null;
  let location: string | null;
  let tokenId: string | null = null;
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
      throw forbidden("Only an operator token (accounts \"*\", role admin) registers a shared-pool agent; others need a registration token.");
    }
    accountAlias = null;
    location = body.location ?? null;
  }
  const id = crypto.randomUUID();
  const credential = `rac_${id}_${randomSecret()}`;
  const now = Date.now();
  await insertAgent(env.DB, {
    id,
    account_alias: accountAlias,
    name: body.name || body.hostname || `agent-${id.slice(0, 8)}`,
    location,
    version: body.version ?? null,
    hostname: body.hostname ?? null,
    concurrency: body.concurrency ?? 1,
    credential_hash: await hashSecret(credential),
    token_id: tokenId,
    created_time: now,
    last_seen: now,
    revoked_time: null,
  });
  return {
    agentId: id,
    credential,
    accountAlias,
    location,
    shared: accountAlias === null,
    leaseTtlMs: LEASE_TTL_MS,
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    pollWaitMs: MAX_POLL_WAIT_MS,
  };
}

// ---- authentication -----------------------------------------------------------------------

/** The agent a `rac_…` credential belongs to; unknown, malformed or revoked → 401. */
export async function authenticateAgent(env: Env, credential: string): Promise<AgentRow> {
  const m = CREDENTIAL_RE.exec(credential);
  if (!m) throw unauthorized("The agent credential is malformed (expected rac_<agentId>_<secret>).");
  const agent = await getAgent(env.DB, m[1]!);
  // Hash and compare even for an unknown id so the answer takes the same time either way.
  const presented = await sha256(credential);
  const stored = agent ? hexBytes(agent.credential_hash) : new Uint8Array(presented.length);
  const same = stored.length === presented.length && crypto.subtle.timingSafeEqual(stored, presented);
  if (!agent || !same) throw unauthorized("The agent credential is not valid.");
  if (agent.revoked_time !== null) throw unauthorized("This agent was revoked.");
  return agent;
}

/** `/agent/*` middleware: Bearer rac_… → `c.var.agent`; records the sighting (throttled). */
export const requireAgent: MiddlewareHandler<AgentEnv> = async (c, next) => {
  const header = c.req.header("authorization") ?? "";
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw unauthorized("An agent credential (Bearer rac_...) is required.", !header);
  const agent = await authenticateAgent(c.env, m[1]!);
  const now = Date.now();
  if (agent.last_seen === null || now - agent.last_seen >= SEEN_THROTTLE_MS) {
    const write = touchAgent(c.env.DB, agent.id, now).catch((e) => console.error("lastSeen update failed", e));
    c.executionCtx.waitUntil(write);
  }
  c.set("agent", agent);
  await next();
};

// ---- work --------------------------------------------------------------------------------

/**
 * The long poll: a lease for the agent as soon as its dispatcher grants one, else null after the
 * wait. A poll whose request went away is never granted one (the dispatcher asks `alive` right
 * before granting); if it goes away between the grant and the answer, the lease is handed back.
 */
export async function pollForLease(
  env: Env,
  agent: AgentRow,
  ask: { capacity?: number; concurrency?: number; waitMs?: number },
  signal: AbortSignal,
  ctx: { waitUntil(p: Promise<unknown>): void },
): Promise<LeaseBody | null> {
  // The concurrency given at registration may not be the one the agent runs with (`run --concurrency`).
  if (ask.concurrency !== undefined && ask.concurrency !== agent.concurrency) {
    ctx.waitUntil(setAgentConcurrency(env.DB, agent.id, ask.concurrency).catch((e) => console.error("concurrency update failed", e)));
  }
  if (ask.capacity === 0) return null;
  const wait = Math.min(ask.waitMs ?? MAX_POLL_WAIT_MS, MAX_POLL_WAIT_MS);
  // RPC typing maps the lease's `unknown` extra vars to `never`; the value is the object's LeaseBody.
  const lease = (await dispatcherStub(env, agentDispatcherKey(agent)).poll({ agentId: agent.id, alive: () => !signal.aborted }, wait)) as LeaseBody | null;
  if (lease && signal.aborted) {
    ctx.waitUntil(executionClient(env, lease.executionId).release(agent.id, { attempt: lease.attempt, leaseId: lease.leaseId }).catch(() => undefined));
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
    online: a.last_seen !== null && now - a.last_seen <= ONLINE_WINDOW_MS,
    lastSeen: a.last_seen,
    createdTime: a.created_time,
    runningExecutions: running,
  };
}

/** Whose agents: an account alias, or null for the shared pool (the operator's). */
export type AgentPool = string | null;

export async function listAgents(env: Env, pool: AgentPool, p: PageParams): Promise<Page<AgentView>> {
  const page = await listLiveAgents(env.DB, pool, p);
  const running = await leasedExecutionsOf(env.DB, page.results.map((r) => r.id));
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
 * Revokes an agent of the pool: its credential stops working at once (the D1 row is what every
 * call checks), its waiting polls are dropped, and every lease it holds is lost at once (a run
 * that started ends FAILURE agent_revoked; one that had not goes back to PENDING).
 */
export async function revokeAgentAndLeases(env: Env, pool: AgentPool, agentId: string): Promise<void> {
  const a = await getAgent(env.DB, agentId);
  if (!a || a.account_alias !== pool) throw notFound();
  if (!(await revokeAgent(env.DB, pool, agentId, Date.now()))) throw notFound();
  // First the dispatcher (no new lease can reach the agent), then the leases it already holds.
  await dispatcherStub(env, agentDispatcherKey(a)).agentRevoked(agentId);
  const held = (await leasedExecutionsOf(env.DB, [agentId])).get(agentId) ?? [];
  const results = await Promise.allSettled(held.map((id) => executionClient(env, id).agentRevoked(agentId)));
  // A lease that could not be dropped here still expires: the agent can no longer heartbeat.
  results.forEach((r, i) => r.status === "rejected" && console.error("agentRevoked failed", held[i], r.reason));
}
