/** Storage of jobs: plain functions over D1, bound parameters only (migrations/0002_jobs.sql). */
import type { Page, PageParams } from "../schemas/common";
import { selectPage } from "./page";

export interface JobRow {
  id: string;
  account_alias: string;
  /** JSON of the non-secret definition (see worker/domain/jobs.ts `StoredDefinition`). */
  definition: string;
  /** Ciphertext of the JSON of the job's secrets, or null when it has none. */
  secrets: string | null;
  created_time: number;
  last_updated_time: number;
  version: number;
}

const COLUMNS = "id, account_alias, definition, secrets, created_time, last_updated_time, version";

/** Inserts the job and, in the same batch, its audit row (worker/domain/audit.ts). */
export async function insertJob(db: D1Database, row: JobRow, audit: D1PreparedStatement): Promise<void> {
  await db.batch([
    db
      .prepare(`INSERT INTO jobs (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .bind(row.id, row.account_alias, row.definition, row.secrets, row.created_time, row.last_updated_time, row.version),
    audit,
  ]);
}

/** The read of one job row, as a statement (a batch may carry it with other reads: one round trip). */
export const jobStatement = (db: D1Database, accountAlias: string, id: string) =>
  db.prepare(`SELECT ${COLUMNS} FROM jobs WHERE id = ? AND account_alias = ?`).bind(id, accountAlias);

export async function getJob(db: D1Database, accountAlias: string, id: string): Promise<JobRow | null> {
  return jobStatement(db, accountAlias, id).first<JobRow>();
}

/** One page of the account's jobs, newest first, and the total. */
export function listJobs(db: D1Database, accountAlias: string, p: PageParams): Promise<Page<JobRow>> {
  return selectPage<JobRow>(db, { select: COLUMNS, from: "jobs", where: "account_alias = ?", args: [accountAlias], orderBy: "created_time DESC, id DESC" }, p);
}

/**
 * Replaces a job if it is still at `expectedVersion`; answers whether it did. `audit` (an
 * `ifChanged` statement) is recorded in the same batch, only if it did.
 */
export async function updateJob(db: D1Database, row: JobRow, expectedVersion: number, audit: D1PreparedStatement): Promise<boolean> {
  const [r] = await db.batch([
    db
      .prepare("UPDATE jobs SET definition = ?, secrets = ?, last_updated_time = ?, version = ? WHERE id = ? AND account_alias = ? AND version = ?")
      .bind(row.definition, row.secrets, row.last_updated_time, row.version, row.id, row.account_alias, expectedVersion),
    audit,
  ]);
  return (r?.meta.changes ?? 0) > 0;
}

/**
 * Deletes a job unless an execution of it is in one of `activeStatuses`, in one statement so that
 * an execution started between the caller's check and this delete still blocks it.
 * Answers whether a row went. Its schedules go in the same batch (one transaction), and only if
 * the job went: a schedule is never left without its job, nor removed from a job that stays.
 * `audit` (an `ifChanged` statement) goes right after the delete, so it is recorded only if the job went.
 */
export async function deleteJobUnlessActive(
  db: D1Database,
  accountAlias: string,
  id: string,
  activeStatuses: readonly string[],
  audit?: D1PreparedStatement,
): Promise<boolean> {
  const marks = activeStatuses.map(() => "?").join(", ");
  const [del] = await db.batch([
    db
      .prepare(
        `DELETE FROM jobs WHERE id = ? AND account_alias = ? AND NOT EXISTS (
           SELECT 1 FROM executions WHERE account_alias = ? AND job_id = ? AND status IN (${marks}))`,
      )
      .bind(id, accountAlias, accountAlias, id, ...activeStatuses),
    ...(audit ? [audit] : []),
    db
      .prepare(`DELETE FROM schedules WHERE account_alias = ? AND job_id = ? AND NOT EXISTS (SELECT 1 FROM jobs WHERE id = ? AND account_alias = ?)`)
      .bind(accountAlias, id, id, accountAlias),
  ]);
  return (del?.meta.changes ?? 0) > 0;
}
