/** Storage of service accounts: plain functions over D1, bound parameters only (migrations/0007_service_accounts.sql). */
import type { Page, PageParams } from "../schemas/common";
import { selectPage } from "./page";

export interface ServiceAccountRow {
  id: string;
  account_alias: string;
  alias: string;
  username: string;
  role: "admin" | "user" | "viewer";
  password_hash: string;
  password_salt: string;
  password_iterations: number;
  token_version: number;
  created_time: number;
  last_updated_time: number;
}

const COLUMNS = "id, account_alias, alias, username, role, password_hash, password_salt, password_iterations, token_version, created_time, last_updated_time";

/** Which unique rule an insert or update broke, or null when it broke none (or something else). */
export type Clash = "alias" | "username";

function clashOf(e: unknown): Clash | null {
  const text = String((e as Error)?.message ?? e);
  if (!/UNIQUE constraint failed/i.test(text)) return null;
  return /username/.test(text) ? "username" : "alias";
}

/** Inserts the row with its audit row (one batch); answers the unique rule it broke instead, if any (another error throws). */
export async function insertServiceAccount(db: D1Database, r: ServiceAccountRow, audit: D1PreparedStatement): Promise<Clash | null> {
  try {
    await db.batch([
      db
        .prepare(`INSERT INTO service_accounts (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .bind(
          r.id,
          r.account_alias,
          r.alias,
          r.username,
          r.role,
          r.password_hash,
          r.password_salt,
          r.password_iterations,
          r.token_version,
          r.created_time,
          r.last_updated_time,
        ),
      audit,
    ]);
    return null;
  } catch (e) {
    const clash = clashOf(e);
    if (clash) return clash;
    throw e;
  }
}

export function getServiceAccount(db: D1Database, accountAlias: string, alias: string): Promise<ServiceAccountRow | null> {
  return db.prepare(`SELECT ${COLUMNS} FROM service_accounts WHERE account_alias = ? AND alias = ?`).bind(accountAlias, alias).first<ServiceAccountRow>();
}

/** Login's lookup: usernames compare case-insensitively (the column is NOCASE). */
export function findServiceAccountByUsername(db: D1Database, username: string): Promise<ServiceAccountRow | null> {
  return db.prepare(`SELECT ${COLUMNS} FROM service_accounts WHERE username = ?`).bind(username).first<ServiceAccountRow>();
}

/** What every request with a login token reads: one row by primary key, one column. */
export async function serviceAccountTokenVersion(db: D1Database, id: string): Promise<number | null> {
  const row = await db.prepare(`SELECT token_version FROM service_accounts WHERE id = ?`).bind(id).first<{ token_version: number }>();
  return row ? row.token_version : null;
}

/** One page of the account's service accounts, newest first, and the total. */
export function listServiceAccounts(db: D1Database, accountAlias: string, p: PageParams): Promise<Page<ServiceAccountRow>> {
  return selectPage<ServiceAccountRow>(
    db,
    { select: COLUMNS, from: "service_accounts", where: "account_alias = ?", args: [accountAlias], orderBy: "created_time DESC, id DESC" },
    p,
  );
}

/**
 * Writes the row's username, role, password and token version if it is still at `expectedVersion`
 * (a concurrent change wins, and this one answers "gone"); or the unique rule it broke. `audit`
 * (an `ifChanged` statement) is recorded in the same batch, only if the row changed.
 */
export async function updateServiceAccount(
  db: D1Database,
  r: ServiceAccountRow,
  expectedVersion: number,
  audit: D1PreparedStatement,
): Promise<Clash | "gone" | null> {
  try {
    const [res] = await db.batch([
      db
        .prepare(
          `UPDATE service_accounts SET username = ?, role = ?, password_hash = ?, password_salt = ?, password_iterations = ?,
             token_version = ?, last_updated_time = ?
           WHERE id = ? AND account_alias = ? AND token_version = ?`,
        )
        .bind(
          r.username,
          r.role,
          r.password_hash,
          r.password_salt,
          r.password_iterations,
          r.token_version,
          r.last_updated_time,
          r.id,
          r.account_alias,
          expectedVersion,
        ),
      audit,
    ]);
    return (res?.meta.changes ?? 0) > 0 ? null : "gone";
  } catch (e) {
    const clash = clashOf(e);
    if (clash) return clash;
    throw e;
  }
}

/**
 * A stronger hash of the same password (more iterations), unless the row changed since it was read
 * (a new password must not be overwritten by the old one). The token version stays: tokens stay good.
 */
export async function rehashServiceAccountPassword(
  db: D1Database,
  row: Pick<ServiceAccountRow, "id" | "token_version" | "password_hash">,
  hash: { hash: string; salt: string; iterations: number },
): Promise<void> {
  await db
    .prepare(
      `UPDATE service_accounts SET password_hash = ?, password_salt = ?, password_iterations = ? WHERE id = ? AND token_version = ? AND password_hash = ?`,
    )
    .bind(hash.hash, hash.salt, hash.iterations, row.id, row.token_version, row.password_hash)
    .run();
}

/** Deletes the account's service account; false when there is none. `audit` (an `ifChanged` statement): only if it went. */
export async function deleteServiceAccount(db: D1Database, accountAlias: string, alias: string, audit: D1PreparedStatement): Promise<boolean> {
  const [r] = await db.batch([db.prepare(`DELETE FROM service_accounts WHERE account_alias = ? AND alias = ?`).bind(accountAlias, alias), audit]);
  return (r?.meta.changes ?? 0) > 0;
}
