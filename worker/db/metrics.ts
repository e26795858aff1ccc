/**
 * What GET /metrics reads: counts over the executions index and the agents, each query served by
 * an index (test/worker/db-indexes-happy.test.ts explains them). Plain functions over D1.
 */
import { EXECUTION_STATUSES } from "../schemas/execution";

const STATUSES = JSON.stringify(EXECUTION_STATUSES);

/** Executions by status (executions_by_status_updated, covering). */
export async function executionsByStatus(db: D1Database): Promise<Map<string, number>> {
  const { results } = await db
    .prepare(`SELECT status, COUNT(*) AS n FROM executions WHERE status IN (SELECT value FROM json_each(?)) GROUP BY status`)
    .bind(STATUSES)
    .all<{ status: string; n: number }>();
  return new Map(results.map((r) => [r.status, r.n]));
}

export interface PendingQueue {
  account: string;
  /** Where the work waits: the job's `location`, else its first host's `rnr_location`; "" for none. */
  location: string;
  pending: number;
  /** The earliest time one of them became PENDING (epoch ms). */
  oldestSince: number;
}

/**
 * Pending executions by account and the location their job routes to (as worker/domain/dispatch.ts
 * picks it), with the oldest one's time in that state. Reads the PENDING rows through
 * executions_by_status_updated and each one's job by primary key.
 */
export async function pendingQueues(db: D1Database): Promise<PendingQueue[]> {
  const { results } = await db
    .prepare(
      `SELECT e.account_alias AS account,
              COALESCE(
                NULLIF(trim(json_extract(j.definition, '$.location')), ''),
                (SELECT trim(json_extract(h.value, '$.hostVars.rnr_location')) FROM json_each(j.definition, '$.hosts') AS h
                  WHERE json_type(h.value, '$.hostVars.rnr_location') = 'text' AND trim(json_extract(h.value, '$.hostVars.rnr_location')) <> ''
                  LIMIT 1),
                '') AS location,
              COUNT(*) AS pending, MIN(e.updated_time) AS oldestSince
       FROM executions AS e LEFT JOIN jobs AS j ON j.id = e.job_id
       WHERE e.status = ?
       GROUP BY account, location`,
    )
    .bind("PENDING")
    .all<PendingQueue>();
  return results;
}

export interface AgentCount {
  /** null: the shared pool. */
  account: string | null;
  location: string | null;
  online: number;
  total: number;
}

/** Live agents by account and location, and how many were seen since `onlineSince` (agents_live). */
export async function liveAgentCounts(db: D1Database, onlineSince: number): Promise<AgentCount[]> {
  const { results } = await db
    .prepare(
      `SELECT account_alias AS account, location, SUM(COALESCE(last_seen, 0) >= ?) AS online, COUNT(*) AS total
       FROM agents WHERE revoked_time IS NULL GROUP BY account_alias, location`,
    )
    .bind(onlineSince)
    .all<AgentCount>();
  return results;
}
