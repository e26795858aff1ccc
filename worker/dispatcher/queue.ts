/**
 * The Dispatcher object's storage (its SQLite): the queue of PENDING executions, the leases it
 * granted (`leased`, so a slot whose `finished` never came can be reconciled), the round-robin
 * turns and its counters. Synchronous SQL only; the pump (dispatcher.do.ts) decides. The tables'
 * names and columns are stored data: never rename them.
 */
import type { DispatchItem } from "../domain/contracts";
import { backoffMs } from "../lib/backoff";

export interface QueueRow extends Record<string, SqlStorageValue> {
  execution_id: string;
  account_alias: string;
  job_id: string;
  enqueued_at: number;
  seq: number;
  failures: number;
}

export interface LeasedRow {
  executionId: string;
  accountAlias: string;
  jobId: string;
  agentId: string;
}

const TABLES = `
  CREATE TABLE IF NOT EXISTS queue (
    execution_id TEXT PRIMARY KEY,
    account_alias TEXT NOT NULL,
    job_id TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX IF NOT EXISTS queue_by_job ON queue (account_alias, job_id, enqueued_at, seq);
  CREATE TABLE IF NOT EXISTS leased (
    execution_id TEXT PRIMARY KEY,
    account_alias TEXT NOT NULL,
    job_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    leased_at INTEGER NOT NULL,
    -- When the row was last confirmed against the executions index (see reconcile()).
    checked_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS leased_by_account ON leased (account_alias);
  -- Round-robin: the turn at which an account (job_id '') or a job of it was last served.
  CREATE TABLE IF NOT EXISTS turns (
    account_alias TEXT NOT NULL,
    job_id TEXT NOT NULL,
    served INTEGER NOT NULL,
    PRIMARY KEY (account_alias, job_id)
  );
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
  -- The waiting reason last told to each queued execution (JSON), so only changes are told.
  CREATE TABLE IF NOT EXISTS told (execution_id TEXT PRIMARY KEY, reason TEXT NOT NULL);
`;

/** A grant that failed is tried again after this backoff (1 s doubling to a minute). */
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 60_000;

export class DispatchQueue {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(TABLES);
  }

  // ---- the queue ------------------------------------------------------------------------------

  /** Adds an item unless it is there already (a repeat keeps its place). */
  add(item: DispatchItem): void {
    this.sql.exec(
      `INSERT INTO queue (execution_id, account_alias, job_id, enqueued_at, seq) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (execution_id) DO NOTHING`,
      item.executionId,
      item.accountAlias,
      item.jobId,
      item.enqueuedAt,
      this.next("seq"),
    );
  }

  /** Takes the item off the queue; the row it was, if it was there. */
  take(executionId: string): QueueRow | null {
    // Back on a queue later, it is told its reason afresh (the object starts each PENDING spell without one).
    this.sql.exec(`DELETE FROM told WHERE execution_id = ?`, executionId);
    return this.sql.exec<QueueRow>(`DELETE FROM queue WHERE execution_id = ? RETURNING *`, executionId).toArray()[0] ?? null;
  }

  has(executionId: string): boolean {
    return this.sql.exec(`SELECT 1 FROM queue WHERE execution_id = ?`, executionId).toArray().length > 0;
  }

  /** Puts a taken item back with its place, to be tried again after a backoff. */
  requeueAfterFailure(item: QueueRow): void {
    const failures = item.failures + 1;
    this.sql.exec(
      `INSERT INTO queue (execution_id, account_alias, job_id, enqueued_at, seq, failures, not_before) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (execution_id) DO NOTHING`,
      item.execution_id,
      item.account_alias,
      item.job_id,
      item.enqueued_at,
      item.seq,
      failures,
      Date.now() + backoffMs(failures, RETRY_BASE_MS, RETRY_MAX_MS),
    );
  }

  /** Accounts with work ready at `now`, least recently served first. */
  accountsByTurn(now: number): string[] {
    return this.sql
      .exec<{ account_alias: string }>(
        `SELECT q.account_alias, COALESCE(t.served, 0) AS served, MIN(q.enqueued_at) AS first_at, MIN(q.seq) AS first_seq
         FROM queue q LEFT JOIN turns t ON t.account_alias = q.account_alias AND t.job_id = ''
         WHERE q.not_before <= ?
         GROUP BY q.account_alias ORDER BY served, first_at, first_seq`,
        now,
      )
      .toArray()
      .map((a) => a.account_alias);
  }

  /** The account's next item: its least recently served job, then FIFO within the job. */
  nextOf(account: string, now: number): QueueRow | null {
    const job = this.sql
      .exec<{ job_id: string }>(
        `SELECT q.job_id, COALESCE(t.served, 0) AS served, MIN(q.enqueued_at) AS first_at, MIN(q.seq) AS first_seq
         FROM queue q LEFT JOIN turns t ON t.account_alias = q.account_alias AND t.job_id = q.job_id
         WHERE q.account_alias = ? AND q.not_before <= ?
         GROUP BY q.job_id ORDER BY served, first_at, first_seq LIMIT 1`,
        account,
        now,
      )
      .toArray()[0];
    if (!job) return null;
    return (
      this.sql
        .exec<QueueRow>(
          `SELECT * FROM queue WHERE account_alias = ? AND job_id = ? AND not_before <= ? ORDER BY enqueued_at, seq LIMIT 1`,
          account,
          job.job_id,
          now,
        )
        .toArray()[0] ?? null
    );
  }

  /** Records the turn of the item's account and job. */
  served(item: QueueRow): void {
    const turn = this.next("turn");
    for (const job of ["", item.job_id]) {
      this.sql.exec(
        `INSERT INTO turns (account_alias, job_id, served) VALUES (?, ?, ?)
         ON CONFLICT (account_alias, job_id) DO UPDATE SET served = excluded.served`,
        item.account_alias,
        job,
        turn,
      );
    }
    this.forgetIdle(item);
  }

  /** A job (or account) with nothing left queued forgets its turn: the table stays as small as the queue. */
  forgetIdle(item: QueueRow): void {
    this.sql.exec(
      `DELETE FROM turns WHERE account_alias = ? AND job_id = ? AND NOT EXISTS (SELECT 1 FROM queue WHERE account_alias = ? AND job_id = ?)`,
      item.account_alias,
      item.job_id,
      item.account_alias,
      item.job_id,
    );
    this.sql.exec(
      `DELETE FROM turns WHERE account_alias = ? AND job_id = '' AND NOT EXISTS (SELECT 1 FROM queue WHERE account_alias = ?)`,
      item.account_alias,
      item.account_alias,
    );
  }

  /** The earliest retry of a failed grant still ahead. */
  nextRetry(now: number): number | null {
    return this.sql.exec<{ t: number | null }>(`SELECT MIN(not_before) AS t FROM queue WHERE not_before > ?`, now).one().t;
  }

  count(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM queue`).one().n;
  }

  /** Every queued item in start order, with the reason it was last told (null: none yet). */
  waitingRows(): { execution_id: string; account_alias: string; told: string | null }[] {
    return this.sql
      .exec<{ execution_id: string; account_alias: string; told: string | null }>(
        `SELECT q.execution_id, q.account_alias, t.reason AS told FROM queue q LEFT JOIN told t ON t.execution_id = q.execution_id ORDER BY q.enqueued_at, q.seq`,
      )
      .toArray();
  }

  /** Remembers what an execution was told, if it is still queued. */
  told(executionId: string, reason: string): void {
    this.sql.exec(
      `INSERT INTO told (execution_id, reason) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM queue WHERE execution_id = ?)
       ON CONFLICT (execution_id) DO UPDATE SET reason = excluded.reason`,
      executionId,
      reason,
      executionId,
    );
  }

  /** Rows of executions no longer queued (none should be left: `take` drops them) go: the table stays as small as the queue. */
  forgetTold(): void {
    this.sql.exec(`DELETE FROM told WHERE execution_id NOT IN (SELECT execution_id FROM queue)`);
  }

  toldCount(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM told`).one().n;
  }

  queued(): DispatchItem[] {
    return this.sql
      .exec<QueueRow>(`SELECT * FROM queue ORDER BY enqueued_at, seq`)
      .toArray()
      .map((r) => ({ executionId: r.execution_id, accountAlias: r.account_alias, jobId: r.job_id, enqueuedAt: r.enqueued_at }));
  }

  // ---- leases granted here ----------------------------------------------------------------------

  /** Remembers the grant; false when a row was there already (it is left as it is). */
  markLeased(item: QueueRow, agentId: string, now: number): boolean {
    return (
      this.sql.exec(
        `INSERT INTO leased (execution_id, account_alias, job_id, agent_id, leased_at, checked_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (execution_id) DO NOTHING`,
        item.execution_id,
        item.account_alias,
        item.job_id,
        agentId,
        now,
        now,
      ).rowsWritten > 0
    );
  }

  releaseLeased(executionId: string): void {
    this.sql.exec(`DELETE FROM leased WHERE execution_id = ?`, executionId);
  }

  /** The lease went to `agentId` after all (the row predates this grant). */
  reassign(executionId: string, agentId: string, now: number): void {
    this.sql.exec(`UPDATE leased SET agent_id = ?, leased_at = ?, checked_at = ? WHERE execution_id = ?`, agentId, now, now, executionId);
  }

  /** Leases not confirmed since `before`. */
  uncheckedSince(before: number): string[] {
    return this.sql
      .exec<{ execution_id: string }>(`SELECT execution_id FROM leased WHERE checked_at < ?`, before)
      .toArray()
      .map((r) => r.execution_id);
  }

  confirmed(executionId: string, now: number): void {
    this.sql.exec(`UPDATE leased SET checked_at = ? WHERE execution_id = ?`, now, executionId);
  }

  /** When the least recently confirmed lease was last confirmed. */
  oldestCheck(): number | null {
    return this.sql.exec<{ t: number | null }>(`SELECT MIN(checked_at) AS t FROM leased`).one().t;
  }

  leased(): LeasedRow[] {
    return this.sql
      .exec<{ execution_id: string; account_alias: string; job_id: string; agent_id: string }>(`SELECT * FROM leased ORDER BY leased_at`)
      .toArray()
      .map((r) => ({ executionId: r.execution_id, accountAlias: r.account_alias, jobId: r.job_id, agentId: r.agent_id }));
  }

  private next(name: string): number {
    return this.sql
      .exec<{ value: number }>(`INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value`, name)
      .one().value;
  }
}
