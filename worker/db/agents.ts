// Storage of agents and registration tokens: plain functions over D1 with bound parameters.
import type { Page, PageParams } from "../schemas/common";
import { selectPage } from "./page";

/** Served by agent_tokens_by_account / agents_by_account. */
const LIVE_OF_ACCOUNT = "account_alias = ? AND revoked_time IS NULL";
/** The shared pool's agents are those of no account (agents_by_account too). */
const LIVE_SHARED = "account_alias IS NULL AND revoked_time IS NULL";

export interface AgentRow {
  id: string;
  account_alias: string | null;
  name: string;
  location: string | null;
  version: string | null;
  hostname: string | null;
  concurrency: number;
  credential_hash: string;
  token_id: string | null;
  created_time: number;
  last_seen: number | null;
  revoked_time: number | null;
}

export interface TokenRow {
  id: string;
  account_alias: string;
  token_hash: string;
  name: string | null;
  description: string | null;
  location: string | null;
  created_time: number;
  revoked_time: number | null;
}

/** Inserts the token with its audit row, in one batch. */
export async function insertToken(db: D1Database, t: TokenRow, audit: D1PreparedStatement): Promise<void> {
  await db.batch([
    db
      .prepare(
        `INSERT INTO agent_tokens (id, account_alias, token_hash, name, description, location, created_time, revoked_time)
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`,
      )
      .bind(t.id, t.account_alias, t.token_hash, t.name, t.description, t.location, t.created_time),
    audit,
  ]);
}

export async function findLiveTokenByHash(db: D1Database, hash: string): Promise<TokenRow | null> {
  return db.prepare(`SELECT * FROM agent_tokens WHERE token_hash = ? AND revoked_time IS NULL`).bind(hash).first<TokenRow>();
}

/** Live registration tokens of the account, newest first. */
export function listLiveTokens(db: D1Database, alias: string, p: PageParams): Promise<Page<TokenRow>> {
  return selectPage<TokenRow>(db, { select: "*", from: "agent_tokens", where: LIVE_OF_ACCOUNT, args: [alias], orderBy: "created_time DESC, id DESC" }, p);
}

/**
 * Sets `revoked_time` on a live row of the account (null: the shared pool); false when there is none.
 * `audit` (an `ifChanged` statement) is recorded in the same batch, only if a row was revoked.
 */
async function revoke(
  db: D1Database,
  table: "agents" | "agent_tokens",
  alias: string | null,
  id: string,
  now: number,
  audit: D1PreparedStatement,
): Promise<boolean> {
  // `IS` so that null names the shared pool (and never matches an account's row).
  const [r] = await db.batch([
    db.prepare(`UPDATE ${table} SET revoked_time = ? WHERE id = ? AND account_alias IS ? AND revoked_time IS NULL`).bind(now, id, alias),
    audit,
  ]);
  return (r?.meta.changes ?? 0) > 0;
}

/** Revokes a live token of the account; false when there is none. */
export const revokeToken = (db: D1Database, alias: string, tokenId: string, now: number, audit: D1PreparedStatement) =>
  revoke(db, "agent_tokens", alias, tokenId, now, audit);

/** Inserts the agent with its audit row, in one batch. */
export async function insertAgent(db: D1Database, a: AgentRow, audit: D1PreparedStatement): Promise<void> {
  await db.batch([
    db
      .prepare(
        `INSERT INTO agents (id, account_alias, name, location, version, hostname, concurrency, credential_hash, token_id, created_time, last_seen, revoked_time)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
      )
      .bind(a.id, a.account_alias, a.name, a.location, a.version, a.hostname, a.concurrency, a.credential_hash, a.token_id, a.created_time, a.last_seen),
    audit,
  ]);
}

export async function getAgent(db: D1Database, id: string): Promise<AgentRow | null> {
  return db.prepare(`SELECT * FROM agents WHERE id = ?`).bind(id).first<AgentRow>();
}

/** Live agents of the account (null: of the shared pool), newest first. */
export function listLiveAgents(db: D1Database, alias: string | null, p: PageParams): Promise<Page<AgentRow>> {
  const [where, args] = alias === null ? [LIVE_SHARED, []] : [LIVE_OF_ACCOUNT, [alias]];
  return selectPage<AgentRow>(db, { select: "*", from: "agents", where, args, orderBy: "created_time DESC, id DESC" }, p);
}

/** How many live agents serve a queue, and when any of them was last seen (null: none ever was). */
export interface Presence {
  registered: number;
  lastSeen: number | null;
}

/**
 * The live agents of the account's location (null: the default location; `IS` matches NULL too),
 * or with `alias` null, of the shared pool (whatever their location: one queue serves them all).
 */
export async function agentPresence(db: D1Database, alias: string | null, location: string | null): Promise<Presence> {
  const stmt =
    alias === null
      ? db.prepare(`SELECT COUNT(*) AS n, MAX(last_seen) AS seen FROM agents WHERE ${LIVE_SHARED}`)
      : db
          .prepare(`SELECT COUNT(*) AS n, MAX(last_seen) AS seen FROM agents WHERE account_alias = ? AND location IS ? AND revoked_time IS NULL`)
          .bind(alias, location);
  const row = await stmt.first<{ n: number; seen: number | null }>();
  return { registered: row?.n ?? 0, lastSeen: row?.seen ?? null };
}

/** What routing asks of an account's agents: when a default-location one was last seen, and whether it has any live agent at all. */
export interface OwnAgents {
  /** The latest `last_seen` of its live default-location agents (null: none, or none ever seen). */
  defaultLastSeen: number | null;
  /** It has a live agent in some location (revoked ones do not count). */
  any: boolean;
}

/**
 * Both of routing's questions in one statement (one round trip; both use agents_by_account).
 * Read its single row with `ownAgentsOf`.
 */
export const ownAgentsStatement = (db: D1Database, alias: string) =>
  db
    .prepare(
      // INDEXED BY: a lone MAX() would otherwise walk agents_live (every live agent, newest first).
      `SELECT (SELECT MAX(last_seen) FROM agents INDEXED BY agents_by_location WHERE account_alias = ? AND location IS ? AND revoked_time IS NULL) AS seen,
              EXISTS (SELECT 1 FROM agents WHERE ${LIVE_OF_ACCOUNT}) AS any_live`,
    )
    .bind(alias, null, alias);

export interface OwnAgentsRow {
  seen: number | null;
  any_live: number;
}

export const ownAgentsOf = (row: OwnAgentsRow | null | undefined): OwnAgents => ({
  defaultLastSeen: row?.seen ?? null,
  any: (row?.any_live ?? 0) === 1,
});

export async function ownAgents(db: D1Database, alias: string): Promise<OwnAgents> {
  return ownAgentsOf(await ownAgentsStatement(db, alias).first<OwnAgentsRow>());
}

/** Revokes a live agent of the account (null: of the shared pool); false when there is none. */
export const revokeAgent = (db: D1Database, alias: string | null, agentId: string, now: number, audit: D1PreparedStatement) =>
  revoke(db, "agents", alias, agentId, now, audit);

/** Records that the agent was seen, unless a newer sighting is already stored (racing isolates). */
export async function touchAgent(db: D1Database, agentId: string, now: number): Promise<void> {
  await db.prepare(`UPDATE agents SET last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)`).bind(now, agentId, now).run();
}

/** The concurrency the agent runs with, as its lease polls report it. */
export async function setAgentConcurrency(db: D1Database, agentId: string, concurrency: number): Promise<void> {
  await db.prepare(`UPDATE agents SET concurrency = ? WHERE id = ?`).bind(concurrency, agentId).run();
}
