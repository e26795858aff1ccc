// Storage of agents and registration tokens: plain functions over D1 with bound parameters.

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

/** Statuses in which an execution holds a lease (mirrors the Execution object's state machine). */
export const LEASED_STATUSES = ["INITIALIZING", "RUNNING", "STOPPING", "KILLING"] as const;

export async function insertToken(db: D1Database, t: TokenRow): Promise<void> {
  await db
    .prepare(
      `INSERT INTO agent_tokens (id, account_alias, token_hash, name, description, location, created_time, revoked_time)
       VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`,
    )
    .bind(t.id, t.account_alias, t.token_hash, t.name, t.description, t.location, t.created_time)
    .run();
}

export async function findLiveTokenByHash(db: D1Database, hash: string): Promise<TokenRow | null> {
  return db.prepare(`SELECT * FROM agent_tokens WHERE token_hash = ? AND revoked_time IS NULL`).bind(hash).first<TokenRow>();
}

export async function listLiveTokens(db: D1Database, alias: string, page: number, size: number): Promise<{ total: number; rows: TokenRow[] }> {
  const [count, rows] = await db.batch([
    db.prepare(`SELECT COUNT(*) AS n FROM agent_tokens WHERE account_alias = ? AND revoked_time IS NULL`).bind(alias),
    db
      .prepare(
        `SELECT * FROM agent_tokens WHERE account_alias = ? AND revoked_time IS NULL
         ORDER BY created_time DESC, id DESC LIMIT ? OFFSET ?`,
      )
      .bind(alias, size, page * size),
  ]);
  return { total: (count!.results[0] as { n: number }).n, rows: rows!.results as TokenRow[] };
}

/** Revokes a live token of the account; false when there is none. */
export async function revokeToken(db: D1Database, alias: string, tokenId: string, now: number): Promise<boolean> {
  const r = await db
    .prepare(`UPDATE agent_tokens SET revoked_time = ? WHERE id = ? AND account_alias = ? AND revoked_time IS NULL`)
    .bind(now, tokenId, alias)
    .run();
  return r.meta.changes > 0;
}

export async function insertAgent(db: D1Database, a: AgentRow): Promise<void> {
  await db
    .prepare(
      `INSERT INTO agents (id, account_alias, name, location, version, hostname, concurrency, credential_hash, token_id, created_time, last_seen, revoked_time)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
    )
    .bind(a.id, a.account_alias, a.name, a.location, a.version, a.hostname, a.concurrency, a.credential_hash, a.token_id, a.created_time, a.last_seen)
    .run();
}

export async function getAgent(db: D1Database, id: string): Promise<AgentRow | null> {
  return db.prepare(`SELECT * FROM agents WHERE id = ?`).bind(id).first<AgentRow>();
}

export async function listLiveAgents(db: D1Database, alias: string, page: number, size: number): Promise<{ total: number; rows: AgentRow[] }> {
  const [count, rows] = await db.batch([
    db.prepare(`SELECT COUNT(*) AS n FROM agents WHERE account_alias = ? AND revoked_time IS NULL`).bind(alias),
    db
      .prepare(
        `SELECT * FROM agents WHERE account_alias = ? AND revoked_time IS NULL
         ORDER BY created_time DESC, id DESC LIMIT ? OFFSET ?`,
      )
      .bind(alias, size, page * size),
  ]);
  return { total: (count!.results[0] as { n: number }).n, rows: rows!.results as AgentRow[] };
}

/** Does the account have a live agent in this location (null: the default location)? */
export async function hasLiveAgentIn(db: D1Database, alias: string, location: string | null): Promise<boolean> {
  const row =
    location === null
      ? await db.prepare(`SELECT 1 FROM agents WHERE account_alias = ? AND location IS NULL AND revoked_time IS NULL LIMIT 1`).bind(alias).first()
      : await db
          .prepare(`SELECT 1 FROM agents WHERE account_alias = ? AND location = ? AND revoked_time IS NULL LIMIT 1`)
          .bind(alias, location)
          .first();
  return row !== null;
}

/** Revokes a live agent of the account; false when there is none. */
export async function revokeAgent(db: D1Database, alias: string, agentId: string, now: number): Promise<boolean> {
  const r = await db
    .prepare(`UPDATE agents SET revoked_time = ? WHERE id = ? AND account_alias = ? AND revoked_time IS NULL`)
    .bind(now, agentId, alias)
    .run();
  return r.meta.changes > 0;
}

/** Records that the agent was seen, unless a newer sighting is already stored (racing isolates). */
export async function touchAgent(db: D1Database, agentId: string, now: number): Promise<void> {
  await db.prepare(`UPDATE agents SET last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)`).bind(now, agentId, now).run();
}

/** Executions each agent holds a lease on, from the executions index (served by executions_by_agent). */
export async function leasedExecutionsOf(db: D1Database, agentIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(agentIds.map((id) => [id, []]));
  if (agentIds.length === 0) return out;
  // json_each keeps this one bound parameter per list (D1 allows at most 100 per statement).
  const { results } = await db
    .prepare(
      `SELECT id, agent_id FROM executions
       WHERE agent_id IN (SELECT value FROM json_each(?)) AND status IN (SELECT value FROM json_each(?))
       ORDER BY created_time, id`,
    )
    .bind(JSON.stringify(agentIds), JSON.stringify(LEASED_STATUSES))
    .all<{ id: string; agent_id: string }>();
  for (const r of results) out.get(r.agent_id)?.push(r.id);
  return out;
}
