/**
 * Per-account concurrency slots (migrations/0006_account_slots.sql): plain functions over D1.
 *
 * Why D1 and not the dispatcher's own storage: an account is served by several dispatchers (one
 * per location, plus the shared pool), and ACCOUNT_CONCURRENCY is a limit on the account. The
 * claim is one INSERT … SELECT … WHERE count < limit: D1 runs each statement atomically, so two
 * dispatchers racing for the last slot cannot both win.
 *
 * A slot counts while its execution holds a lease according to the executions index, or while it
 * is younger than SLOT_GRACE_MS (the index may not show a fresh lease yet). So a slot whose release
 * got lost (a dispatcher evicted mid-grant) stops counting once the index shows the execution
 * ended, instead of blocking the account for ever.
 */
import { LEASED_STATUSES } from "../schemas/execution";

export const SLOT_GRACE_MS = 60_000;
const LEASED = JSON.stringify(LEASED_STATUSES);

const COUNTED = `(s.taken_time > ? OR EXISTS (SELECT 1 FROM executions e WHERE e.id = s.execution_id AND e.status IN (SELECT value FROM json_each(?))))`;

export type Claim = "taken" | "held" | "full";

/**
 * Takes a slot of the account for the execution if the account's other counted slots are fewer
 * than `limit`: "held" (the execution already has a slot that counts: nothing changes), "taken"
 * (this call took it, or renewed its own stale one), or "full". One batch, so one transaction.
 */
export async function claimSlot(db: D1Database, executionId: string, accountAlias: string, limit: number, now: number): Promise<Claim> {
  const cutoff = now - SLOT_GRACE_MS;
  const [mine, upsert] = await db.batch([
    db.prepare(`SELECT 1 AS counted FROM account_slots s WHERE s.execution_id = ? AND ${COUNTED}`).bind(executionId, cutoff, LEASED),
    db
      .prepare(
        `INSERT INTO account_slots (execution_id, account_alias, taken_time)
         SELECT ?, ?, ? WHERE (SELECT COUNT(*) FROM account_slots s WHERE s.account_alias = ? AND s.execution_id <> ? AND ${COUNTED}) < ?
         ON CONFLICT (execution_id) DO UPDATE SET taken_time = excluded.taken_time`,
      )
      .bind(executionId, accountAlias, now, accountAlias, executionId, cutoff, LEASED, limit),
  ]);
  if ((mine?.results.length ?? 0) > 0) return "held";
  return (upsert?.meta.changes ?? 0) > 0 ? "taken" : "full";
}

/** How many slots each of these accounts holds now (accounts holding none are absent). */
export async function slotsHeld(db: D1Database, accounts: string[], now: number): Promise<Map<string, number>> {
  if (accounts.length === 0) return new Map();
  const { results } = await db
    .prepare(
      `SELECT s.account_alias AS account_alias, COUNT(*) AS n FROM account_slots s
       WHERE s.account_alias IN (SELECT value FROM json_each(?)) AND ${COUNTED}
       GROUP BY s.account_alias`,
    )
    .bind(JSON.stringify(accounts), now - SLOT_GRACE_MS, LEASED)
    .all<{ account_alias: string; n: number }>();
  return new Map(results.map((r) => [r.account_alias, r.n]));
}

/** Gives the execution's slot back (idempotent). */
export async function releaseSlots(db: D1Database, executionIds: string[]): Promise<void> {
  if (executionIds.length === 0) return;
  await db.prepare(`DELETE FROM account_slots WHERE execution_id IN (SELECT value FROM json_each(?))`).bind(JSON.stringify(executionIds)).run();
}
