/** Storage of the audit log: plain functions over D1, bound parameters only (migrations/0011_audit.sql). */
import type { Page, PageParams } from "../schemas/common";
import { selectPage } from "./page";

export interface AuditRow {
  id: string;
  account_alias: string | null;
  time: number;
  action: string;
  subject: string;
  subject_kind: string;
  resource_type: string;
  resource_id: string | null;
  ip: string | null;
  request_id: string | null;
  /** JSON of an object of non-secret facts. */
  details: string;
}

const COLUMNS = "id, account_alias, time, action, subject, subject_kind, resource_type, resource_id, ip, request_id, details";

const values = (r: AuditRow) => [
  r.id,
  r.account_alias,
  r.time,
  r.action,
  r.subject,
  r.subject_kind,
  r.resource_type,
  r.resource_id,
  r.ip,
  r.request_id,
  r.details,
];

/**
 * The insert of one row, to run on its own or in the batch of the change it records. With
 * `ifChanged`, it lands only if the statement right before it in the batch changed a row
 * (SQLite's `changes()`: a batch runs its statements in order on one connection, in one
 * transaction), so a conditional update that did nothing records nothing.
 */
export function auditInsert(db: D1Database, r: AuditRow, opts: { ifChanged?: boolean } = {}): D1PreparedStatement {
  const sql = opts.ifChanged
    ? `INSERT INTO audit_log (${COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() > 0`
    : `INSERT INTO audit_log (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
  return db.prepare(sql).bind(...values(r));
}

export async function insertAudit(db: D1Database, r: AuditRow): Promise<void> {
  await auditInsert(db, r).run();
}

export interface AuditFilter {
  since: number;
  resourceType?: string;
  resourceId?: string;
}

/**
 * One page of the account's log (null: what belongs to no account), newest first, and the total.
 * Each filter has its index (audit_by_account, audit_by_resource_type, audit_by_resource): the page
 * is read in index order, `since` bounding the range.
 */
export function listAudit(db: D1Database, accountAlias: string | null, f: AuditFilter, p: PageParams): Promise<Page<AuditRow>> {
  let where = accountAlias === null ? "account_alias IS NULL" : "account_alias = ?";
  const args: unknown[] = accountAlias === null ? [] : [accountAlias];
  if (f.resourceType !== undefined) {
    where += " AND resource_type = ?";
    args.push(f.resourceType);
    if (f.resourceId !== undefined) {
      where += " AND resource_id = ?";
      args.push(f.resourceId);
    }
  }
  where += " AND time >= ?";
  args.push(f.since);
  return selectPage<AuditRow>(db, { select: COLUMNS, from: "audit_log", where, args, orderBy: "time DESC, id DESC" }, p);
}

/** Deletes up to `limit` rows older than `before`, oldest first (audit_by_time); answers how many went. */
export async function pruneAudit(db: D1Database, before: number, limit: number): Promise<number> {
  const r = await db
    .prepare(`DELETE FROM audit_log WHERE rowid IN (SELECT rowid FROM audit_log WHERE time < ? ORDER BY time LIMIT ?)`)
    .bind(before, limit)
    .run();
  return r.meta.changes;
}
