/** Storage of account settings: plain functions over D1 (migrations/0012_account_settings.sql). */

export interface SettingsRow {
  pending_timeout_minutes: number;
  shared_pool_fallback: number;
}

/** The read of the account's settings row, as a statement (for a batch). */
export const settingsStatement = (db: D1Database, accountAlias: string) =>
  db.prepare(`SELECT pending_timeout_minutes, shared_pool_fallback FROM account_settings WHERE account_alias = ?`).bind(accountAlias);

/** The account's stored settings; null when it never changed any (the defaults apply). */
export function getSettingsRow(db: D1Database, accountAlias: string): Promise<SettingsRow | null> {
  return settingsStatement(db, accountAlias).first<SettingsRow>();
}

export async function putSettingsRow(db: D1Database, accountAlias: string, row: SettingsRow, now: number): Promise<void> {
  await db
    .prepare(
      `INSERT INTO account_settings (account_alias, pending_timeout_minutes, shared_pool_fallback, updated_time) VALUES (?, ?, ?, ?)
       ON CONFLICT (account_alias) DO UPDATE SET pending_timeout_minutes = excluded.pending_timeout_minutes,
         shared_pool_fallback = excluded.shared_pool_fallback, updated_time = excluded.updated_time`,
    )
    .bind(accountAlias, row.pending_timeout_minutes, row.shared_pool_fallback, now)
    .run();
}
