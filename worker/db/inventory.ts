/** Storage of account inventories: plain functions over D1 (migrations/0005_inventory.sql). */
import type { StoredInventoryHost } from "../schemas/inventory";

/** The account's hosts; an account that never stored an inventory has none. */
export async function getInventoryHosts(db: D1Database, accountAlias: string): Promise<StoredInventoryHost[]> {
  const row = await db.prepare(`SELECT hosts FROM inventories WHERE account_alias = ?`).bind(accountAlias).first<{ hosts: string }>();
  return row ? (JSON.parse(row.hosts) as StoredInventoryHost[]) : [];
}

/** Replaces the account's hosts, whole, in one statement (with its audit row, in one batch). */
export async function putInventoryHosts(
  db: D1Database,
  accountAlias: string,
  hosts: StoredInventoryHost[],
  now: number,
  audit: D1PreparedStatement,
): Promise<void> {
  await db.batch([
    db
      .prepare(
        `INSERT INTO inventories (account_alias, hosts, updated_time) VALUES (?, ?, ?)
       ON CONFLICT (account_alias) DO UPDATE SET hosts = excluded.hosts, updated_time = excluded.updated_time`,
      )
      .bind(accountAlias, JSON.stringify(hosts), now),
    audit,
  ]);
}
