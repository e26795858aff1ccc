/** Storage of webhooks: signing secrets and deliveries (migrations/0010_webhooks.sql). Bound parameters only. */
import type { Page, PageParams } from "../schemas/common";
import { selectPage } from "./page";

// ---------------------------------------------------------------- secrets

export interface WebhookSecretRow {
  account_alias: string;
  /** Ciphertexts (lib/secrets.ts). */
  secret: string;
  previous_secret: string | null;
  previous_until: number | null;
  created_time: number;
}

export function getWebhookSecret(db: D1Database, accountAlias: string): Promise<WebhookSecretRow | null> {
  return db
    .prepare("SELECT account_alias, secret, previous_secret, previous_until, created_time FROM webhook_secrets WHERE account_alias = ?")
    .bind(accountAlias)
    .first<WebhookSecretRow>();
}

/** Stores `secret` unless the account has one already (two first reads at once keep one); answers the row that stands. */
export async function insertWebhookSecretOnce(db: D1Database, accountAlias: string, secret: string, now: number): Promise<WebhookSecretRow> {
  const [, row] = await db.batch([
    db.prepare("INSERT OR IGNORE INTO webhook_secrets (account_alias, secret, created_time) VALUES (?, ?, ?)").bind(accountAlias, secret, now),
    db.prepare("SELECT account_alias, secret, previous_secret, previous_until, created_time FROM webhook_secrets WHERE account_alias = ?").bind(accountAlias),
  ]);
  return row!.results[0] as WebhookSecretRow;
}

/** Replaces the secret if it is still `expected`, keeping that one as the previous until `previousUntil`. */
export async function rotateWebhookSecret(
  db: D1Database,
  accountAlias: string,
  expected: string,
  next: string,
  now: number,
  previousUntil: number,
): Promise<boolean> {
  const r = await db
    .prepare("UPDATE webhook_secrets SET previous_secret = secret, previous_until = ?, secret = ?, created_time = ? WHERE account_alias = ? AND secret = ?")
    .bind(previousUntil, next, now, accountAlias, expected)
    .run();
  return r.meta.changes > 0;
}

// ---------------------------------------------------------------- deliveries

export type DeliveryStatus = "pending" | "delivered" | "failed";

export interface DeliveryRow {
  id: string;
  account_alias: string;
  job_id: string;
  execution_id: string;
  callback_index: number;
  url: string;
  level: string;
  event_seq: number;
  event_type: string;
  sequence: number;
  status: DeliveryStatus;
  attempts: number;
  last_response_code: number | null;
  last_error: string | null;
  created_time: number;
  updated_time: number;
  delivered_time: number | null;
}

const COLUMNS =
  "id, account_alias, job_id, execution_id, callback_index, url, level, event_seq, event_type, sequence, status, attempts, last_response_code, last_error, created_time, updated_time, delivered_time";

export type NewDelivery = Pick<
  DeliveryRow,
  "id" | "account_alias" | "job_id" | "execution_id" | "callback_index" | "url" | "level" | "event_seq" | "event_type" | "sequence" | "created_time"
>;

/** The statements that record new deliveries as pending; a row that exists already is left as it is. */
export function insertDeliveries(db: D1Database, rows: NewDelivery[]): D1PreparedStatement[] {
  return rows.map((r) =>
    db
      .prepare(
        `INSERT OR IGNORE INTO deliveries (id, account_alias, job_id, execution_id, callback_index, url, level, event_seq, event_type, sequence, status, attempts, created_time, updated_time)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
      )
      .bind(
        r.id,
        r.account_alias,
        r.job_id,
        r.execution_id,
        r.callback_index,
        r.url,
        r.level,
        r.event_seq,
        r.event_type,
        r.sequence,
        r.created_time,
        r.created_time,
      ),
  );
}

export function getDelivery(db: D1Database, id: string): Promise<DeliveryRow | null> {
  return db.prepare(`SELECT ${COLUMNS} FROM deliveries WHERE id = ?`).bind(id).first<DeliveryRow>();
}

/** One execution's deliveries in event order (then callback order), and the total. */
export function listDeliveries(db: D1Database, scope: { accountAlias: string; jobId: string; executionId: string }, p: PageParams): Promise<Page<DeliveryRow>> {
  return selectPage<DeliveryRow>(
    db,
    {
      select: COLUMNS,
      from: "deliveries",
      where: "execution_id = ? AND account_alias = ? AND job_id = ?",
      args: [scope.executionId, scope.accountAlias, scope.jobId],
      orderBy: "event_seq, callback_index",
    },
    p,
  );
}

/** What one send came to. */
export interface AttemptResult {
  status: DeliveryStatus;
  responseCode: number | null;
  error: string | null;
  at: number;
}

/** Records one send: attempts + 1, its answer, and the status it leaves. */
export async function recordAttempt(db: D1Database, id: string, r: AttemptResult): Promise<void> {
  await db
    .prepare(
      `UPDATE deliveries SET attempts = attempts + 1, status = ?, last_response_code = ?, last_error = ?, updated_time = ?,
         delivered_time = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_time END
       WHERE id = ?`,
    )
    .bind(r.status, r.responseCode, r.error, r.at, r.status, r.at, id)
    .run();
}

/** Ends a delivery as failed without a send (a refused URL, a vanished event, the dead-letter queue). Only a pending one. */
export async function failDelivery(db: D1Database, id: string, error: string, at: number): Promise<void> {
  await db.prepare("UPDATE deliveries SET status = 'failed', last_error = ?, updated_time = ? WHERE id = ? AND status = 'pending'").bind(error, at, id).run();
}

/** A redelivery: pending again (attempts and the last answer stay, as history). */
export async function markPending(db: D1Database, id: string, at: number): Promise<void> {
  await db.prepare("UPDATE deliveries SET status = 'pending', updated_time = ? WHERE id = ?").bind(at, id).run();
}
