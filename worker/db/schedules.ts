/** Storage of schedules: plain functions over D1, bound parameters only (migrations/0009_schedules.sql). */
import type { Page, PageParams } from "../schemas/common";
import { selectPage } from "./page";

export interface ScheduleRow {
  id: string;
  account_alias: string;
  job_id: string;
  description: string;
  service_account_alias: string;
  trigger_type: "cron" | "date";
  expression: string;
  timezone: string;
  /** 0 or 1. Invariant: a disabled schedule has no next_run_time. */
  enabled: number;
  next_run_time: number | null;
  last_run_time: number | null;
  last_run_delay_ms: number | null;
  last_execution_id: string | null;
  last_error: string | null;
  created_time: number;
  last_updated_time: number;
}

const COLUMNS =
  "id, account_alias, job_id, description, service_account_alias, trigger_type, expression, timezone, enabled, next_run_time, last_run_time, last_run_delay_ms, last_execution_id, last_error, created_time, last_updated_time";

/**
 * Inserts the schedule if its job exists and holds fewer than `max` schedules, in one statement
 * (a job deleted meanwhile cannot be left with an orphan; two creates cannot both take the 100th).
 * Answers "ok", "no-job" or "full". `audit` (an `ifChanged` statement) lands only with the schedule.
 */
export async function insertScheduleIfRoom(db: D1Database, r: ScheduleRow, max: number, audit: D1PreparedStatement): Promise<"ok" | "no-job" | "full"> {
  const [ins, , job] = await db.batch([
    db
      .prepare(
        `INSERT INTO schedules (${COLUMNS})
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
         WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ? AND account_alias = ?)
           AND (SELECT COUNT(*) FROM schedules WHERE account_alias = ? AND job_id = ?) < ?`,
      )
      .bind(
        r.id,
        r.account_alias,
        r.job_id,
        r.description,
        r.service_account_alias,
        r.trigger_type,
        r.expression,
        r.timezone,
        r.enabled,
        r.next_run_time,
        r.last_run_time,
        r.last_run_delay_ms,
        r.last_execution_id,
        r.last_error,
        r.created_time,
        r.last_updated_time,
        r.job_id,
        r.account_alias,
        r.account_alias,
        r.job_id,
        max,
      ),
    audit,
    db.prepare(`SELECT 1 AS found FROM jobs WHERE id = ? AND account_alias = ?`).bind(r.job_id, r.account_alias),
  ]);
  if ((ins?.meta.changes ?? 0) > 0) return "ok";
  return job?.results.length ? "full" : "no-job";
}

export function getSchedule(db: D1Database, accountAlias: string, jobId: string, id: string): Promise<ScheduleRow | null> {
  return db.prepare(`SELECT ${COLUMNS} FROM schedules WHERE id = ? AND account_alias = ? AND job_id = ?`).bind(id, accountAlias, jobId).first<ScheduleRow>();
}

/** One page of a job's schedules, newest first, and the total. */
export function listSchedules(db: D1Database, accountAlias: string, jobId: string, p: PageParams): Promise<Page<ScheduleRow>> {
  return selectPage<ScheduleRow>(
    db,
    { select: COLUMNS, from: "schedules", where: "account_alias = ? AND job_id = ?", args: [accountAlias, jobId], orderBy: "created_time DESC, id DESC" },
    p,
  );
}

/** Replaces the definition (and next run, clearing the last error); false when there is no such schedule. `audit`: only if it did. */
export async function replaceSchedule(db: D1Database, r: ScheduleRow, audit: D1PreparedStatement): Promise<boolean> {
  const [res] = await db.batch([
    db
      .prepare(
        `UPDATE schedules SET description = ?, service_account_alias = ?, trigger_type = ?, expression = ?, timezone = ?, enabled = ?,
           next_run_time = ?, last_error = NULL, last_updated_time = ?
         WHERE id = ? AND account_alias = ? AND job_id = ?`,
      )
      .bind(
        r.description,
        r.service_account_alias,
        r.trigger_type,
        r.expression,
        r.timezone,
        r.enabled,
        r.next_run_time,
        r.last_updated_time,
        r.id,
        r.account_alias,
        r.job_id,
      ),
    audit,
  ]);
  return (res?.meta.changes ?? 0) > 0;
}

/** Deletes the schedule; false when there is none. `audit` (an `ifChanged` statement): only if it went. */
export async function deleteSchedule(db: D1Database, accountAlias: string, jobId: string, id: string, audit: D1PreparedStatement): Promise<boolean> {
  const [r] = await db.batch([db.prepare(`DELETE FROM schedules WHERE id = ? AND account_alias = ? AND job_id = ?`).bind(id, accountAlias, jobId), audit]);
  return (r?.meta.changes ?? 0) > 0;
}

// ---------------------------------------------------------------- the cron tick (worker/cron.ts)

/** A due schedule with what firing needs to know of its service account (null: it no longer exists). */
export interface DueSchedule extends ScheduleRow {
  next_run_time: number;
  service_account_role: "admin" | "user" | "viewer" | null;
}

/**
 * Schedules due at `now`, earliest slot first: a range of schedules_due (only rows with a slot at
 * or before `now` are read), each joined to its service account through service_accounts_by_alias.
 */
export async function dueSchedules(db: D1Database, now: number, limit: number): Promise<{ rows: DueSchedule[]; rowsRead: number }> {
  const cols = COLUMNS.split(", ")
    .map((c) => `s.${c}`)
    .join(", ");
  const { results, meta } = await db
    .prepare(
      `SELECT ${cols}, sa.role AS service_account_role
       FROM schedules s INDEXED BY schedules_due
       LEFT JOIN service_accounts sa ON sa.account_alias = s.account_alias AND sa.alias = s.service_account_alias
       WHERE s.next_run_time IS NOT NULL AND s.next_run_time <= ?
       ORDER BY s.next_run_time LIMIT ?`,
    )
    .bind(now, limit)
    .all<DueSchedule>();
  return { rows: results, rowsRead: meta.rows_read ?? 0 };
}

/**
 * Records a fired slot. The schedule moves on to `next` (a date that has fired is disabled) only if
 * it still waits for `slot`: a concurrent tick or a PUT may have moved it. The run is recorded
 * unless a later slot was recorded already; recording the same slot again writes the same values.
 * One statement: SQLite reads every SET expression from the row as it was.
 */
export async function recordFired(db: D1Database, r: { id: string; slot: number; next: number | null; delayMs: number; executionId: string }): Promise<void> {
  await db
    .prepare(
      `UPDATE schedules SET
         enabled = CASE WHEN next_run_time = ?1 AND ?2 IS NULL THEN 0 ELSE enabled END,
         next_run_time = CASE WHEN next_run_time = ?1 THEN ?2 ELSE next_run_time END,
         last_error = CASE WHEN next_run_time = ?1 THEN NULL ELSE last_error END,
         last_run_time = CASE WHEN last_run_time IS NULL OR last_run_time <= ?1 THEN ?1 ELSE last_run_time END,
         last_run_delay_ms = CASE WHEN last_run_time IS NULL OR last_run_time <= ?1 THEN ?3 ELSE last_run_delay_ms END,
         last_execution_id = CASE WHEN last_run_time IS NULL OR last_run_time <= ?1 THEN ?4 ELSE last_execution_id END
       WHERE id = ?5`,
    )
    .bind(r.slot, r.next, r.delayMs, r.executionId, r.id)
    .run();
}

/** Records why `slot` did not fire and moves on to `next` (a date that cannot fire is disabled). Only if it still waits for `slot`. */
export async function recordSkipped(db: D1Database, r: { id: string; slot: number; next: number | null; error: string }): Promise<boolean> {
  const res = await db
    .prepare(
      `UPDATE schedules SET next_run_time = ?2, enabled = CASE WHEN ?2 IS NULL THEN 0 ELSE enabled END, last_error = ?3
       WHERE id = ?4 AND next_run_time = ?1`,
    )
    .bind(r.slot, r.next, r.error.slice(0, 1000), r.id)
    .run();
  return res.meta.changes > 0;
}
