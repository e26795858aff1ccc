/**
 * The audit log: who changed what, when, from where. Every change of the API is recorded here,
 * by the domain function that makes it (routes stay thin):
 *
 * - a change that is a D1 write puts `auditStatement(...)` in the same `db.batch` as the write
 *   (with `ifChanged` after a conditional update or delete), so the change and its record land
 *   together or not at all;
 * - any other change (an Execution object's, a login, a read of a secret) calls `recordAudit(...)`
 *   once it has succeeded.
 *
 * Never a secret: `details` is built by the caller from names, ids, roles and counts only (never a
 * password, token, key, credential, webhook secret, extra var or request body), and is cut short
 * here. Rows live 90 days (`pruneAuditLog`, called by the cron).
 */
import { auditInsert, insertAudit, listAudit, pruneAudit, type AuditRow } from "../db/audit";
import { newId } from "../lib/ids";
import { log } from "../lib/log";
import type { Page, PageParams } from "../schemas/common";
import { parseResource, type Actor, type AuditAction, type AuditDetails, type AuditEntry, type AuditResourceType } from "../schemas/audit";

export const AUDIT_RETENTION_MS = 90 * 24 * 3600_000;
/** Rows one cron tick deletes at most (a tick a minute keeps up with far more than Runner writes). */
export const PRUNE_PER_TICK = 1000;

const MAX_TEXT = 200;
const MAX_LIST = 20;

export interface AuditRecord {
  /** The account the change belongs to; null for what belongs to none (the shared pool). */
  accountAlias: string | null;
  action: AuditAction;
  resource: { type: AuditResourceType; id: string | null };
  details?: AuditDetails;
}

/** Short values only: a long string is cut, a long list too; nothing nested. */
function trimDetails(d: AuditDetails = {}): string {
  const out: AuditDetails = {};
  const cut = (s: string) => (s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s);
  for (const [k, v] of Object.entries(d)) {
    if (v === undefined) continue;
    out[k] = typeof v === "string" ? cut(v) : Array.isArray(v) ? v.slice(0, MAX_LIST).map(cut) : v;
  }
  return JSON.stringify(out);
}

function rowOf(actor: Actor, r: AuditRecord, now: number): AuditRow {
  return {
    id: newId(now),
    account_alias: r.accountAlias,
    time: now,
    action: r.action,
    subject: actor.subject,
    subject_kind: actor.kind,
    resource_type: r.resource.type,
    resource_id: r.resource.id,
    ip: actor.ip,
    request_id: actor.requestId,
    details: trimDetails(r.details),
  };
}

/**
 * The record of a change, as a statement for the batch that makes the change. `ifChanged`: only if
 * the statement just before it in the batch changed a row (a conditional update or delete).
 */
export function auditStatement(db: D1Database, actor: Actor, r: AuditRecord, opts: { ifChanged?: boolean } = {}): D1PreparedStatement {
  return auditInsert(db, rowOf(actor, r, Date.now()), opts);
}

/**
 * Records a change that is not itself a D1 write in the same batch (an execution stopped, a login,
 * a webhook secret read or rotated), after it succeeded. `actor` is `actorOf(c)` in a route
 * (worker/lib/request-context.ts). For example, the webhooks routes:
 *
 *   await recordAudit(env, actor, { accountAlias, action: "webhookSecret.rotated", resource: { type: "webhook", id } });
 *
 * A failure to record fails the request (a change nobody can see was made must not pass silently),
 * unless the change was already made: then the caller decides (see `recordAuditAfter`).
 */
export async function recordAudit(env: Pick<Env, "DB">, actor: Actor, r: AuditRecord): Promise<void> {
  await insertAudit(env.DB, rowOf(actor, r, Date.now()));
}

/**
 * For a change that is already made and cannot be undone (an Execution object moved on): the record
 * is written, and if D1 fails, the failure is logged loudly instead of answering an error for a
 * change that did happen.
 */
export async function recordAuditAfter(env: Pick<Env, "DB">, actor: Actor, r: AuditRecord): Promise<void> {
  try {
    await recordAudit(env, actor, r);
  } catch (e) {
    log.error("audit: a change was made but could not be recorded", {
      action: r.action,
      account: r.accountAlias,
      resource: r.resource.type,
      resourceId: r.resource.id,
      requestId: actor.requestId,
      error: e,
    });
  }
}

function entryView(r: AuditRow): AuditEntry {
  return {
    id: r.id,
    accountAlias: r.account_alias,
    time: r.time,
    action: r.action as AuditEntry["action"],
    subject: r.subject,
    subjectKind: r.subject_kind as AuditEntry["subjectKind"],
    resourceType: r.resource_type as AuditEntry["resourceType"],
    resourceId: r.resource_id,
    ip: r.ip,
    requestId: r.request_id,
    details: JSON.parse(r.details) as Record<string, unknown>,
  };
}

/** A page of the account's log (null: of what belongs to no account), newest first; `resource` is `type` or `type/id`. */
export async function listAuditPage(env: Env, accountAlias: string | null, q: PageParams & { since: number; resource?: string }): Promise<Page<AuditEntry>> {
  const res = q.resource ? parseResource(q.resource) : undefined;
  const page = await listAudit(env.DB, accountAlias, { since: q.since, resourceType: res?.type, resourceId: res?.id }, q);
  return { ...page, results: page.results.map(entryView) };
}

/** The cron's share: forgets rows older than 90 days, at most PRUNE_PER_TICK per tick (the rest next tick). */
export function pruneAuditLog(env: Pick<Env, "DB">, now: number, limit = PRUNE_PER_TICK): Promise<number> {
  return pruneAudit(env.DB, now - AUDIT_RETENTION_MS, limit);
}
