import { DurableObject } from "cloudflare:workers";
import { agentPresence } from "../db/agents";
import { stillLeased } from "../db/executions";
import { claimSlot, releaseSlots, slotsHeld, type Claim } from "../db/slots";
import { isOnline, parseDispatcherKey, type DispatchItem } from "../domain/contracts";
import { executionClient } from "../domain/execution-client";
import { queuedBehind, type WaitingReason } from "../domain/waiting";
import { log } from "../lib/log";
import { MAX_POLL_WAIT_MS } from "../schemas/agent";
import type { LeaseBody } from "../schemas/execution";
import { DispatchQueue, type LeasedRow, type QueueRow } from "./queue";

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

export interface DispatcherSnapshot {
  queued: DispatchItem[];
  leased: LeasedRow[];
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
 * While work is queued, its waiting reasons are looked at again this often even if nothing here
 * happened (an agent that went quiet is only noticed by the clock), and a pump's changes are told
 * at most every REASONS_DEBOUNCE_MS.
 */
const REASONS_RECHECK_MS = 30_000;
const REASONS_DEBOUNCE_MS = 1_000;
/** Objects told at once, in a pass. */
const TELL_AT_ONCE = 8;
/** At most this many revocations are remembered (the oldest go first; D1 refuses a revoked credential anyway). */
const MAX_REVOKED = 1_000;

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
  private readonly queue: DispatchQueue;
  private waiters: Waiter[] = [];
  private pumping = false;
  private again = false;
  /** The execution whose grant is in flight (a repeated enqueue of it must not undo the grant). */
  private granting: string | null = null;
  private readonly revoked = new Map<string, number>();
  /** Accounts found full by a claim in this pump round (a lone account's, or a lost race for the last slot), skipped until the next. */
  private full = new Set<string>();
  /** When work held back by a full account (or a failed count) should be looked at again. */
  private recheckAt: number | null = null;
  /** When the waiting reasons are next looked at while work is queued (see tellReasons). */
  private reasonsAt: number | null = null;
  private reasonsTimer: ReturnType<typeof setTimeout> | null = null;
  private lastPass = 0;
  private passChain: Promise<void> = Promise.resolve();
  private nextPass: Promise<void> | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.queue = new DispatchQueue(ctx.storage.sql);
  }

  // ---- RPC ----------------------------------------------------------------------------------

  /** Adds a PENDING execution; idempotent by executionId (a repeat keeps its place). */
  async enqueue(item: DispatchItem): Promise<void> {
    if (item.executionId === this.granting) return;
    this.queue.add(item);
    void this.pump();
    // The new execution learns why it waits before its start is answered; unless an agent waits
    // here: then it is leased at once (its reason's D1 count and index write would only hold the
    // grant up). If it is not, the pump's pass ends with a reasons pass for what is left queued,
    // and a claim that finds the account full tells it so at once.
    if (!this.waiters.some((w) => !w.done)) await this.tellReasons();
  }

  /** Drops a queued execution (stopped or killed while PENDING). */
  async remove(executionId: string): Promise<void> {
    const row = this.queue.take(executionId);
    if (row) this.queue.forgetIdle(row);
    this.reasonsSoon(); // the ones behind it moved up
  }

  /**
   * The execution left its leased states: its account's slot is free again. The D1 slot goes first:
   * if that fails, this call fails and the Execution object sends it again.
   */
  async finished(executionId: string): Promise<void> {
    await releaseSlots(this.env.DB, [executionId]);
    this.queue.releaseLeased(executionId);
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
    const now = Date.now();
    for (const [id, at] of this.revoked) if (now - at > REVOKED_MEMORY_MS) this.revoked.delete(id);
    this.revoked.delete(agentId);
    this.revoked.set(agentId, now);
    while (this.revoked.size > MAX_REVOKED) this.revoked.delete(this.revoked.keys().next().value!);
    for (const w of this.waiters) if (w.agent.agentId === agentId && !w.serving) this.answer(w, null);
  }

  /** What the object holds (operations and tests). */
  async snapshot(): Promise<DispatcherSnapshot> {
    return { queued: this.queue.queued(), leased: this.queue.leased(), waiting: this.waiters.filter((w) => !w.done).map((w) => w.agent.agentId) };
  }

  /** Retries grants that failed and checks leases whose `finished` never came. */
  async alarm(): Promise<void> {
    await this.reconcile();
    await this.pump();
    await this.tellReasons();
    await this.scheduleAlarm();
  }

  /** Test-only introspection: how many entries each in-memory collection and the `told` table hold. */
  async sizes(): Promise<{ waiters: number; revoked: number; full: number; told: number; queued: number }> {
    return { waiters: this.waiters.length, revoked: this.revoked.size, full: this.full.size, told: this.queue.toldCount(), queued: this.queue.count() };
  }

  // ---- waiting reasons ----------------------------------------------------------------------

  /** A pass soon (at most one per REASONS_DEBOUNCE_MS), after the pump changed the queue. */
  private reasonsSoon(): void {
    if (this.reasonsTimer !== null) return;
    const wait = Math.max(0, Math.min(REASONS_DEBOUNCE_MS, this.lastPass + REASONS_DEBOUNCE_MS - Date.now()));
    this.reasonsTimer = setTimeout(() => {
      this.reasonsTimer = null;
      void this.tellReasons();
    }, wait);
  }

  /** One pass at a time; calls made while one runs share the next. Never throws. */
  private tellReasons(): Promise<void> {
    if (this.nextPass) return this.nextPass;
    const run = this.passChain
      .then(() => {
        this.nextPass = null;
        return this.reasonsOnce();
      })
      .catch((e: unknown) => {
        log.error("dispatcher: waiting reasons not told", { error: e });
        this.reasonsAt = Date.now() + REASONS_RECHECK_MS;
      });
    this.nextPass = run;
    this.passChain = run;
    return run;
  }

  /**
   * Works out why each queued execution waits and tells those whose reason changed: with agents
   * polling here, only the account's limit or the queue holds it back; with none, D1 says whether
   * this queue's agents exist and when one was last seen (only agents seen within the online
   * window count, as in routing).
   */
  private async reasonsOnce(): Promise<void> {
    const now = Date.now();
    this.lastPass = now;
    this.queue.forgetTold();
    const rows = this.queue.waitingRows();
    if (rows.length === 0) {
      this.reasonsAt = null;
      return;
    }
    this.reasonsAt = now + REASONS_RECHECK_MS;
    const { account, location } = parseDispatcherKey(this.ctx.id.name ?? "");
    const limit = this.limit();
    const held = await slotsHeld(this.env.DB, [...new Set(rows.map((r) => r.account_alias))], now);
    const presence = this.waiters.some((w) => !w.done) ? null : await agentPresence(this.env.DB, account, location);
    const changed: { id: string; reason: WaitingReason; key: string }[] = [];
    rows.forEach((r, ahead) => {
      const running = held.get(r.account_alias) ?? 0;
      let reason: WaitingReason;
      if (presence && presence.registered === 0) reason = { code: "no_agent", account, location };
      else if (presence && !isOnline(presence.lastSeen, now)) reason = { code: "agent_offline", account, location, lastSeen: presence.lastSeen };
      else if (running >= limit) reason = { code: "account_limit", running, limit };
      else reason = queuedBehind(ahead);
      const key = JSON.stringify(reason);
      if (key !== r.told) changed.push({ id: r.execution_id, reason, key });
    });
    for (let i = 0; i < changed.length; i += TELL_AT_ONCE) {
      const batch = changed.slice(i, i + TELL_AT_ONCE);
      const results = await Promise.allSettled(batch.map((c) => executionClient(this.env, c.id).waiting(c.reason)));
      results.forEach((res, j) => {
        const c = batch[j]!;
        if (res.status === "fulfilled") this.queue.told(c.id, c.key);
        else log.error("dispatcher: waiting reason not delivered", { executionId: c.id, error: res.reason });
      });
    }
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
      } while (this.again);
    } catch (e) {
      log.error("dispatcher: pump failed", { error: e });
      this.recheckAt = Date.now() + LIMIT_RECHECK_MS;
    } finally {
      this.pumping = false;
    }
    if (this.queue.count() > 0) this.reasonsSoon();
    await this.scheduleAlarm().catch((e) => log.error("dispatcher: alarm not set", { error: e }));
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
      const queued = () => this.queue.has(item.execution_id);
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
      log.error("dispatcher: slot claim failed", { executionId: item.execution_id, error: e });
      this.queue.take(item.execution_id);
      this.queue.requeueAfterFailure(item);
      return true;
    }
    if (claim === "full") {
      // The account holds all its slots (a lone account is not counted before its claim), or another
      // of its dispatchers took the last one first: its work waits here.
      this.full.add(item.account_alias);
      // Told at once (no agent waits for a pass when one is polling, see enqueue): the execution
      // knows why it waits, and a lease granted later reads the job afresh (held-job.ts).
      const reason: WaitingReason = { code: "account_limit", running: this.limit(), limit: this.limit() };
      await executionClient(this.env, item.execution_id)
        .waiting(reason)
        .then(() => this.queue.told(item.execution_id, JSON.stringify(reason)))
        .catch((e: unknown) => log.error("dispatcher: waiting reason not delivered", { executionId: item.execution_id, error: e }));
      return true;
    }
    const giveBack = () =>
      claim === "taken"
        ? releaseSlots(this.env.DB, [item.execution_id]).catch((e: unknown) =>
            log.error("dispatcher: slot release failed", { executionId: item.execution_id, error: e }),
          )
        : undefined;
    if (!queued()) {
      await giveBack(); // removed (stopped, killed) while the slot was claimed
      return true;
    }
    // Off the queue, and remembered as leased here, before the grant. A local row it already has (a
    // `finished` that has not arrived yet, or a stale repeat of `enqueue`) is left as it is: only a
    // row made here is dropped when the grant does not happen.
    this.queue.take(item.execution_id);
    const took = this.queue.markLeased(item, w.agent.agentId, Date.now());
    const dropLocal = () => took && this.queue.releaseLeased(item.execution_id);
    let lease: LeaseBody | null;
    try {
      lease = await executionClient(this.env, item.execution_id).grantLease(w.agent.agentId);
    } catch (e) {
      // Unknown outcome: queue it again (a repeat grant answers null if it did happen; the
      // lease alarm recovers a grant nobody received) and retry after a backoff. The D1 slot stays:
      // if the grant happened it is the lease's (its `finished` frees it); if not, it stops
      // counting after the grace, and the retry renews it.
      log.error("dispatcher: grantLease failed", { executionId: item.execution_id, error: e });
      dropLocal();
      this.queue.requeueAfterFailure(item);
      return true;
    }
    if (!lease) {
      // No longer PENDING (stopped, killed, already granted): drop it, try the next. A slot taken
      // for this grant goes back; one the execution already held is its live lease's.
      dropLocal();
      await giveBack();
      this.queue.forgetIdle(item);
      return true;
    }
    if (!took) {
      this.queue.reassign(item.execution_id, w.agent.agentId, Date.now());
    }
    this.queue.served(item);
    if (this.isRevoked(w.agent.agentId)) {
      // Revoked while we granted: the lease is lost at once and the execution goes back to PENDING.
      await executionClient(this.env, item.execution_id)
        .agentRevoked(w.agent.agentId)
        .catch((e: unknown) => log.error("dispatcher: agentRevoked after grant failed", { executionId: item.execution_id, error: e }));
      this.answer(w, null);
      return true;
    }
    this.answer(w, lease);
    return true;
  }

  /**
   * The next item by round-robin over accounts, then jobs, then FIFO, skipping accounts that hold
   * all their slots (counted in D1 across the account's dispatchers). With one account waiting
   * there is nothing to skip to: its item goes straight to the claim, which answers "full"
   * atomically anyway (one D1 round trip fewer on the way to the lease).
   */
  private async pick(): Promise<QueueRow | null> {
    const now = Date.now();
    const limit = this.limit();
    const accounts = this.queue.accountsByTurn(now).filter((a) => !this.full.has(a));
    if (accounts.length === 0) {
      if (this.full.size > 0) this.recheckAt = now + LIMIT_RECHECK_MS;
      return null;
    }
    if (accounts.length === 1) return this.queue.nextOf(accounts[0]!, now);
    const held = await slotsHeld(this.env.DB, accounts, now);
    const account = accounts.find((a) => (held.get(a) ?? 0) < limit);
    if (account === undefined) {
      this.recheckAt = now + LIMIT_RECHECK_MS;
      return null;
    }
    return this.queue.nextOf(account, now);
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

  // ---- safety nets --------------------------------------------------------------------------

  /**
   * A slot whose `finished` never arrived would block the account forever: leases held longer
   * than RECONCILE_AFTER_MS are checked against the executions index, and freed when the
   * execution no longer holds a lease there.
   */
  private async reconcile(): Promise<void> {
    const old = this.queue.uncheckedSince(Date.now() - RECONCILE_AFTER_MS);
    if (old.length === 0) return;
    const live = await stillLeased(this.env.DB, old);
    const ended = old.filter((id) => !live.has(id));
    await releaseSlots(this.env.DB, ended);
    const now = Date.now();
    for (const id of old) {
      if (live.has(id)) this.queue.confirmed(id, now);
      else this.queue.releaseLeased(id);
    }
  }

  /**
   * One alarm slot, set to the earliest of: a failed grant's retry, the next leased-row check, and
   * (while agents wait) another look at work its account's limit held back.
   */
  private async scheduleAlarm(): Promise<void> {
    const now = Date.now();
    const retry = this.queue.nextRetry(now);
    const oldest = this.queue.oldestCheck();
    const check = oldest === null ? null : Math.max(now + 1_000, oldest + RECONCILE_AFTER_MS + 1);
    const recheck = this.recheckAt !== null && this.waiters.some((w) => !w.done) ? this.recheckAt : null;
    const reasons = this.queue.count() > 0 ? (this.reasonsAt ?? now + REASONS_RECHECK_MS) : null;
    const want = [retry, check, recheck, reasons].filter((t): t is number => t !== null);
    const current = await this.ctx.storage.getAlarm();
    if (want.length === 0) return;
    const at = Math.min(...want);
    if (current === null || at < current) await this.ctx.storage.setAlarm(at);
  }
}
