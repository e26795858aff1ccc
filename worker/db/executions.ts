/**
 * The executions index (migrations/0001, 0004): one row per execution, written through only by
 * its Execution object (the authority); everything else here reads it. Plain functions over D1.
 */
import type { PageParams, Page } from "../schemas/common";
import { ACTIVE_STATUSES, LEASED_STATUSES, type ExecutionStatus, type ExecutionView } from "../schemas/execution";
import { selectPage } from "./page";

/** What the Execution object writes through: the row's columns and the view the API answers. */
export interface IndexWrite {
  id: string;
  accountAlias: string;
  jobId: string;
  status: ExecutionStatus;
  trigger: string;
  scheduleId: string | null;
  agentId: string | null;
  reason: string | null;
  createdTime: number;
  updatedTime: number;
  version: number;
  eventCount: number;
  view: ExecutionView;
}

/** Upsert that only lands if `version` is newer than the stored one (writes may arrive out of order). */
export async function writeIndex(db: D1Database, w: IndexWrite): Promise<void> {
  await db
    .prepare(
      `INSERT INTO executions (id, account_alias, job_id, status, trigger, schedule_id, agent_id, reason, created_time, updated_time, version, snapshot, event_count)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, trigger = excluded.trigger, schedule_id = excluded.schedule_id,
         agent_id = excluded.agent_id, reason = excluded.reason, updated_time = excluded.updated_time, version = excluded.version,
         snapshot = excluded.snapshot, event_count = excluded.event_count
       WHERE excluded.version > executions.version`,
    )
    .bind(
      w.id,
      w.accountAlias,
      w.jobId,
      w.status,
      w.trigger,
      w.scheduleId,
      w.agentId,
      w.reason,
      w.createdTime,
      w.updatedTime,
      w.version,
      JSON.stringify(w.view),
      w.eventCount,
    )
    .run();
}

// json_each keeps a list one bound parameter (D1 allows at most 100 per statement).
const ACTIVE = JSON.stringify(ACTIVE_STATUSES);
const LEASED = JSON.stringify(LEASED_STATUSES);

export async function hasActiveExecution(db: D1Database, accountAlias: string, jobId: string): Promise<boolean> {
  const row = await db
    .prepare(`SELECT 1 FROM executions WHERE account_alias = ? AND job_id = ? AND status IN (SELECT value FROM json_each(?)) LIMIT 1`)
    .bind(accountAlias, jobId, ACTIVE)
    .first();
  return row !== null;
}

/** A page of the account's (or one job's) executions as answered, newest first. */
export async function listExecutionViews(
  db: D1Database,
  accountAlias: string,
  filter: { jobId?: string; status?: ExecutionStatus },
  p: PageParams,
): Promise<Page<ExecutionView>> {
  const where = ["account_alias = ?"];
  const args: unknown[] = [accountAlias];
  if (filter.jobId !== undefined) {
    where.push("job_id = ?");
    args.push(filter.jobId);
  }
  if (filter.status !== undefined) {
    where.push("status = ?");
    args.push(filter.status);
  }
  const page = await selectPage<{ snapshot: string }>(
    db,
    { select: "snapshot", from: "executions", where: where.join(" AND "), args, orderBy: "created_time DESC, id DESC" },
    p,
  );
  // Snapshots written before agent_unreachable_since existed lack it.
  return {
    ...page,
    results: page.results.map((r) => {
      const v = JSON.parse(r.snapshot) as ExecutionView;
      return { ...v, agent_unreachable_since: v.agent_unreachable_since ?? null };
    }),
  };
}

/**
 * Whether a job id names anything in the account: the job, or (once it was deleted) executions of
 * it that are still listed. Served by the jobs primary key and executions_by_job.
 */
export async function jobKnown(db: D1Database, accountAlias: string, jobId: string): Promise<boolean> {
  const row = await db
    .prepare(
      `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ? AND account_alias = ?)
           OR EXISTS (SELECT 1 FROM executions WHERE account_alias = ? AND job_id = ?) AS known`,
    )
    .bind(jobId, accountAlias, accountAlias, jobId)
    .first<{ known: number }>();
  return row?.known === 1;
}

/** A job's executions, oldest first, with the event count each had when last written. */
export async function jobExecutionsOldestFirst(db: D1Database, accountAlias: string, jobId: string) {
  const { results } = await db
    .prepare(`SELECT id, status, event_count FROM executions WHERE account_alias = ? AND job_id = ? ORDER BY created_time ASC, id ASC`)
    .bind(accountAlias, jobId)
    .all<{ id: string; status: ExecutionStatus; event_count: number }>();
  return results;
}

/** Active executions whose row has not changed (nor been checked) since `stale`, oldest first. */
export async function staleActiveExecutions(db: D1Database, stale: number, limit: number): Promise<string[]> {
  const { results } = await db
    .prepare(
      `SELECT id FROM executions
       WHERE status IN (SELECT value FROM json_each(?)) AND updated_time < ? AND COALESCE(checked_time, 0) < ?
       ORDER BY updated_time LIMIT ?`,
    )
    .bind(ACTIVE, stale, stale, limit)
    .all<{ id: string }>();
  return results.map((r) => r.id);
}

export async function markChecked(db: D1Database, id: string, now: number): Promise<void> {
  await db.prepare(`UPDATE executions SET checked_time = ? WHERE id = ?`).bind(now, id).run();
}

/** Executions each agent holds a lease on (served by executions_by_agent). */
export async function leasedExecutionsOf(db: D1Database, agentIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(agentIds.map((id) => [id, []]));
  if (agentIds.length === 0) return out;
  const { results } = await db
    .prepare(
      `SELECT id, agent_id FROM executions
       WHERE agent_id IN (SELECT value FROM json_each(?)) AND status IN (SELECT value FROM json_each(?))
       ORDER BY created_time, id`,
    )
    .bind(JSON.stringify(agentIds), LEASED)
    .all<{ id: string; agent_id: string }>();
  for (const r of results) out.get(r.agent_id)?.push(r.id);
  return out;
}

/** Which of these executions still hold a lease according to the index. */
export async function stillLeased(db: D1Database, ids: string[]): Promise<Set<string>> {
  const { results } = await db
    .prepare(`SELECT id FROM executions WHERE id IN (SELECT value FROM json_each(?)) AND status IN (SELECT value FROM json_each(?))`)
    .bind(JSON.stringify(ids), LEASED)
    .all<{ id: string }>();
  return new Set(results.map((r) => r.id));
}
