import { DurableObject } from "cloudflare:workers";
import { stillLeased } from "./db/executions";
import { claimSlot, releaseSlots, slotsHeld, type Claim } from "./db/slots";
import type { DispatchItem } from "./domain/contracts";
import { executionClient } from "./domain/execution-client";
import { MAX_POLL_WAIT_MS } from "./schemas/agent";
import type { LeaseBody } from "./schemas/execution";

/** Who polls: the agent, and optionally a check that its HTTP request is still there to receive. */
export interface PollAgent {
  agentId: string;
  /** Called (over RPC) right before a lease is granted to this waiter; false or a throw means gone. */
  alive?: () => boolean | Promise<boolean>;
}

interface Waiter {
  agent: PollAgent;
  resolve: (lease: LeaseBody | null) => void;
  timer: ReturnType<typeof setTimeout>;
  /** The pump is granting to it: its timer must not answer null underneath. */
  serving: boolean;
  expired: boolean;
  done: boolean;
}

interface QueueRow extends Record<string, SqlStorageValue> {
  execution_id: string;
  account_alias: string;
  job_id: string;
  enqueued_at: number;
  seq: number;
  failures: number;
}

export interface DispatcherSnapshot {
  queued: DispatchItem[];
  leased: { executionId: string; accountAlias: string; jobId: string; agentId: string }[];
  waiting: string[];
}

/** How long a leased row may go without `finished` before it is checked against the executions index. */
const RECONCILE_AFTER_MS = 60_000;
/** Revoked agents are remembered this long, so a poll that raced the revocation gets nothing. */
const REVOKED_MEMORY_MS = 10 * 60_000;
const ALIVE_CHECK_MS = 2_000;
/**
 * Work held back only by its account's limit is looked at again this often while agents wait: a
 * slot freed by another of the account's dispatchers (another location, the shared pool) is not
 * announced here, so this is how soon it is noticed.
 */
const LIMIT_RECHECK_MS = 2_000;

/**
 * One per (account, location) and one for the shared pool (key from `dispatcherKey()`): the FIFO
 * of PENDING executions (in this object's SQLite, so it survives eviction) and the agents
 * long-polling for work (in memory: a poll lives only as long as its request).
 *
 * Order: round-robin across accounts (the shared pool serves many), then across jobs of the
 * account, then FIFO within a job. ACCOUNT_CONCURRENCY is a limit on the account as a whole, across
 * all the dispatchers that serve it: each grant first claims one of the account's slots in D1
 * (worker/db/slots.ts, atomic there), and an account holding all of its slots is skipped. Grants
 * here are serialized through one pump.
 */
export class Dispatcher extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private waiters: Waiter[] = [];
  private pumping = false;
  private again = false;
  /** The execution whose grant is in flight (a repeated enqueue of it must not undo the grant). */
  private granting: string | null = null;
  private readonly revoked = new Map<string, number>();
  /** Accounts found full in this pump round (a lost race for the last slot), skipped until the next. */
  private full = new Set<string>();
  /** When work held back by a full account (or a failed count) should be looked at again. */
  private recheckAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
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
    `);
  }

  // ---- RPC ----------------------------------------------------------------------------------

  /** Adds a PENDING execution; idempotent by executionId (a repeat keeps its place). */
  async enqueue(item: DispatchItem): Promise<void> {
    if (item.executionId === this.granting) return;
    this.sql.exec(
      `INSERT INTO queue (execution_id, account_alias, job_id, enqueued_at, seq) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (execution_id) DO NOTHING`,
      item.executionId,
      item.accountAlias,
      item.jobId,
      item.enqueuedAt,
      this.next("seq"),
    );
    void this.pump();
  }

  /** Drops a queued execution (stopped or killed while PENDING). */
  async remove(executionId: string): Promise<void> {
    const row = this.sql.exec<QueueRow>(`DELETE FROM queue WHERE execution_id = ? RETURNING *`, executionId).toArray()[0];
    if (row) this.forgetIdle(row);
  }

  /**
   * The execution left its leased states: its account's slot is free again. The D1 slot goes first:
   * if that fails, this call fails and the Execution object sends it again.
   */
  async finished(executionId: string): Promise<void> {
    await releaseSlots(this.env.DB, [executionId]);
    this.sql.exec(`DELETE FROM leased WHERE execution_id = ?`, executionId);
    void this.pump();
  }

  /** Long poll: a lease as soon as one is granted to this agent, or null after `waitMs`. */
  async poll(agent: PollAgent, waitMs: number): Promise<LeaseBody | null> {
    if (this.isRevoked(agent.agentId)) return null;
    const wait = Math.max(0, Math.min(Number.isFinite(waitMs) ? waitMs : 0, MAX_POLL_WAIT_MS));
    return new Promise<LeaseBody | null>((resolve) => {
      const w: Waiter = { agent, resolve, serving: false, expired: false, done: false, timer: undefined as never };
      w.timer = setTimeout(() => {
        if (w.serving) w.expired = true;
        else this.answer(w, null);
      }, wait);
      this.waiters.push(w);
      void this.pump();
    });
  }

  /** The agent was revoked: its waiting polls get nothing, and it is granted nothing more. */
  async agentRevoked(agentId: string): Promise<void> {
    this.revoked.set(agentId, Date.now());
    for (const w of this.waiters) if (w.agent.agentId === agentId && !w.serving) this.answer(w, null);
  }

  /** What the object holds (operations and tests). */
  async snapshot(): Promise<DispatcherSnapshot> {
    const queued = this.sql
      .exec<QueueRow>(`SELECT * FROM queue ORDER BY enqueued_at, seq`)
      .toArray()
      .map((r) => ({ executionId: r.execution_id, accountAlias: r.account_alias, jobId: r.job_id, enqueuedAt: r.enqueued_at }));
    const leased = this.sql
      .exec<{ execution_id: string; account_alias: string; job_id: string; agent_id: string }>(`SELECT * FROM leased ORDER BY leased_at`)
      .toArray()
      .map((r) => ({ executionId: r.execution_id, accountAlias: r.account_alias, jobId: r.job_id, agentId: r.agent_id }));
    return { queued, leased, waiting: this.waiters.filter((w) => !w.done).map((w) => w.agent.agentId) };
  }

  /** Retries grants that failed and checks leases whose `finished` never came. */
  async alarm(): Promise<void> {
    await this.reconcile();
    await this.pump();
    await this.scheduleAlarm();
  }

  // ---- the pump -----------------------------------------------------------------------------

  /** Matches waiters with items, one grant at a time; a call while it runs makes it go round again. */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    this.full.clear();
    this.recheckAt = null;
    try {
      do {
        this.again = false;
        while (await this.step());
      }
      while (this.again);
    } catch (e) {
      console.error("dispatcher pump failed", e);
      this.recheckAt = Date.now() + LIMIT_RECHECK_MS;
    } finally {
      this.pumping = false;
    }
    await this.scheduleAlarm().catch((e) => console.error("dispatcher alarm", e));
  }

  /** One hand-off attempt; false when nothing more can be matched now. */
  private async step(): Promise<boolean> {
    const w = this.waiters.find((x) => !x.done);
    if (!w) return false;
    const item = await this.pick();
    if (!item) return false;
    w.serving = true;
    try {
      // A waiter whose request was abandoned must not receive (and lose) a lease.
      if (!(await this.isAlive(w)) || this.isRevoked(w.agent.agentId)) {
        this.answer(w, null);
        return true;
      }
      const queued = () => this.sql.exec(`SELECT 1 FROM queue WHERE execution_id = ?`, item.execution_id).toArray().length > 0;
      // The item may have been removed or granted while we asked.
      if (!queued()) return true;
      this.granting = item.execution_id;
      try {
        return await this.grant(w, item, queued);
      } finally {
        this.granting = null;
      }
    } finally {
      w.serving = false;
      if (w.expired && !w.done) this.answer(w, null);
    }
  }

  /** Claims the account's slot, takes the item off the queue and asks its Execution object for the lease. */
  private async grant(w: Waiter, item: QueueRow, queued: () => boolean): Promise<boolean> {
    let claim: Claim;
    try {
      claim = await claimSlot(this.env.DB, item.execution_id, item.account_alias, this.limit(), Date.now());
    } catch (e) {
      console.error("slot claim failed", item.execution_id, e);
      this.sql.exec(`DELETE FROM queue WHERE execution_id = ?`, item.execution_id);
      this.requeueAfterFailure(item);
      return true;
    }
    if (claim === "full") {
      // Another dispatcher of the account took the last slot first: its work waits here.
      this.full.add(item.account_alias);
      return true;
    }
    const giveBack = () => (claim === "taken" ? releaseSlots(this.env.DB, [item.execution_id]).catch((e: unknown) => console.error("slot release failed", e)) : undefined);
    if (!queued()) {
      await giveBack(); // removed (stopped, killed) while the slot was claimed
      return true;
    }
    // Off the queue, and remembered as leased here, before the grant. A local row it already has (a
    // `finished` that has not arrived yet, or a stale repeat of `enqueue`) is left as it is: only a
    // row made here is dropped when the grant does not happen.
    this.sql.exec(`DELETE FROM queue WHERE execution_id = ?`, item.execution_id);
    const took =
      this.sql.exec(
        `INSERT INTO leased (execution_id, account_alias, job_id, agent_id, leased_at, checked_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (execution_id) DO NOTHING`,
        item.execution_id,
        item.account_alias,
        item.job_id,
        w.agent.agentId,
        Date.now(),
        Date.now(),
      ).rowsWritten > 0;
    const dropLocal = () => took && this.sql.exec(`DELETE FROM leased WHERE execution_id = ?`, item.execution_id);
    let lease: LeaseBody | null;
    try {
      lease = await executionClient(this.env, item.execution_id).grantLease(w.agent.agentId);
    } catch (e) {
      // Unknown outcome: queue it again (a repeat grant answers null if it did happen; the
      // lease alarm recovers a grant nobody received) and retry after a backoff. The D1 slot stays:
      // if the grant happened it is the lease's (its `finished` frees it); if not, it stops
      // counting after the grace, and the retry renews it.
      console.error("grantLease failed", item.execution_id, e);
      dropLocal();
      this.requeueAfterFailure(item);
      return true;
    }
    if (!lease) {
      // No longer PENDING (stopped, killed, already granted): drop it, try the next. A slot taken
      // for this grant goes back; one the execution already held is its live lease's.
      dropLocal();
      await giveBack();
      this.forgetIdle(item);
      return true;
    }
    if (!took) {
      this.sql.exec(`UPDATE leased SET agent_id = ?, leased_at = ?, checked_at = ? WHERE execution_id = ?`, w.agent.agentId, Date.now(), Date.now(), item.execution_id);
    }
    this.served(item);
    if (this.isRevoked(w.agent.agentId)) {
      // Revoked while we granted: the lease is lost at once and the execution goes back to PENDING.
      await executionClient(this.env, item.execution_id)
        .agentRevoked(w.agent.agentId)
        .catch((e: unknown) => console.error("agentRevoked after grant failed", e));
      this.answer(w, null);
      return true;
    }
    this.answer(w, lease);
    return true;
  }

  /**
   * The next item by round-robin over accounts, then jobs, then FIFO, skipping accounts that hold
   * all their slots (counted in D1 across the account's dispatchers).
   */
  private async pick(): Promise<QueueRow | null> {
    const now = Date.now();
    const limit = this.limit();
    const accounts = this.sql
      .exec<{ account_alias: string }>(
        `SELECT q.account_alias, COALESCE(t.served, 0) AS served, MIN(q.enqueued_at) AS first_at, MIN(q.seq) AS first_seq
         FROM queue q LEFT JOIN turns t ON t.account_alias = q.account_alias AND t.job_id = ''
         WHERE q.not_before <= ?
         GROUP BY q.account_alias ORDER BY served, first_at, first_seq`,
        now,
      )
      .toArray()
      .map((a) => a.account_alias)
      .filter((a) => !this.full.has(a));
    if (accounts.length === 0) {
      if (this.full.size > 0) this.recheckAt = now + LIMIT_RECHECK_MS;
      return null;
    }
    const held = await slotsHeld(this.env.DB, accounts, now);
    const account = accounts.find((a) => (held.get(a) ?? 0) < limit);
    if (account === undefined) {
      this.recheckAt = now + LIMIT_RECHECK_MS;
      return null;
    }
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
  private served(item: QueueRow): void {
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
  private forgetIdle(item: QueueRow): void {
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

  private requeueAfterFailure(item: QueueRow): void {
    const failures = item.failures + 1;
    const backoff = Math.min(60_000, 1_000 * 2 ** Math.min(failures - 1, 6));
    this.sql.exec(
      `INSERT INTO queue (execution_id, account_alias, job_id, enqueued_at, seq, failures, not_before) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (execution_id) DO NOTHING`,
      item.execution_id,
      item.account_alias,
      item.job_id,
      item.enqueued_at,
      item.seq,
      failures,
      Date.now() + backoff,
    );
  }

  private async isAlive(w: Waiter): Promise<boolean> {
    if (w.done) return false;
    if (!w.agent.alive) return true;
    try {
      const check = Promise.resolve(w.agent.alive());
      const timeout = new Promise<boolean>((r) => setTimeout(() => r(false), ALIVE_CHECK_MS));
      return (await Promise.race([check, timeout])) === true && !w.done;
    } catch {
      // The caller's request is gone (its RPC stub is disconnected).
      return false;
    }
  }

  private answer(w: Waiter, lease: LeaseBody | null): void {
    if (w.done) return;
    w.done = true;
    clearTimeout(w.timer);
    this.waiters = this.waiters.filter((x) => x !== w);
    w.resolve(lease);
  }

  private isRevoked(agentId: string): boolean {
    const at = this.revoked.get(agentId);
    if (at === undefined) return false;
    if (Date.now() - at > REVOKED_MEMORY_MS) {
      this.revoked.delete(agentId);
      return false;
    }
    return true;
  }

  private limit(): number {
    const n = Number.parseInt(this.env.ACCOUNT_CONCURRENCY ?? "", 10);
    return Number.isFinite(n) && n > 0 ? n : 10;
  }

  private next(name: string): number {
    return this.sql
      .exec<{ value: number }>(
        `INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value`,
        name,
      )
      .one().value;
  }

  // ---- safety nets --------------------------------------------------------------------------

  /**
   * A slot whose `finished` never arrived would block the account forever: leases held longer
   * than RECONCILE_AFTER_MS are checked against the executions index, and freed when the
   * execution no longer holds a lease there.
   */
  private async reconcile(): Promise<void> {
    const old = this.sql
      .exec<{ execution_id: string }>(`SELECT execution_id FROM leased WHERE checked_at < ?`, Date.now() - RECONCILE_AFTER_MS)
      .toArray()
      .map((r) => r.execution_id);
    if (old.length === 0) return;
    const live = await stillLeased(this.env.DB, old);
    const ended = old.filter((id) => !live.has(id));
    await releaseSlots(this.env.DB, ended);
    const now = Date.now();
    for (const id of old) {
      if (live.has(id)) this.sql.exec(`UPDATE leased SET checked_at = ? WHERE execution_id = ?`, now, id);
      else this.sql.exec(`DELETE FROM leased WHERE execution_id = ?`, id);
    }
  }

  /**
   * One alarm slot, set to the earliest of: a failed grant's retry, the next leased-row check, and
   * (while agents wait) another look at work its account's limit held back.
   */
  private async scheduleAlarm(): Promise<void> {
    const now = Date.now();
    const retry = this.sql.exec<{ t: number | null }>(`SELECT MIN(not_before) AS t FROM queue WHERE not_before > ?`, now).one().t;
    const oldest = this.sql.exec<{ t: number | null }>(`SELECT MIN(checked_at) AS t FROM leased`).one().t;
    const check = oldest === null ? null : Math.max(now + 1_000, oldest + RECONCILE_AFTER_MS + 1);
    const recheck = this.recheckAt !== null && this.waiters.some((w) => !w.done) ? this.recheckAt : null;
    const want = [retry, check, recheck].filter((t): t is number => t !== null);
    const current = await this.ctx.storage.getAlarm();
    if (want.length === 0) return;
    const at = Math.min(...want);
    if (current === null || at < current) await this.ctx.storage.setAlarm(at);
  }
}
