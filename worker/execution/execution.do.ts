import { DurableObject } from "cloudflare:workers";
import {
  abandon,
  lostAgentWindowMs,
  type AgentAnswer,
  type AgentCommand,
  type EventPage,
  type EventRun,
  type ExecutionRpc,
  type InitInput,
  type JobForLease,
  type LogChunk,
  type Scope,
  type SecretOverrides,
  type WebhookContent,
} from "../domain/contracts";
import { loadInventoryForLease } from "../domain/inventory";
import { jobForLease, loadJobForLease } from "../domain/jobs";
import { sameReason, waitingText, type WaitingReason } from "../domain/waiting";
import { log } from "../lib/log";
import { conflict, notFound, outcome, type Outcome } from "../lib/problem";
import { decryptJson, encryptJson, SecretsError } from "../lib/secrets";
import type { EventUpload, ExecutionStatus, ExecutionView, HostStats, LeaseBody, LeaseRef, StatusReport } from "../schemas/execution";
import { DEADLINES, KILL_CONFIRM_MS, nextAlarm, unreachableAt } from "./deadlines";
import { applyStats, causeEffects, enterPending, enterTerminal, type ApplyOptions } from "./effects";
import { EVENT_TABLES, EventLog } from "./event-log";
import { HeldJob } from "./held-job";
import { statsFrom } from "./host-stats";
import { leaseBody, secretPart } from "./lease-body";
import { CAUSE_VERB, LEASED, reasonFor, REPORT_CAUSE, target, TERMINAL, type Cause } from "./machine";
import { Outbox } from "./outbox";
import { indexRowOf, loadState, newState, saveState, STATE_TABLE, viewOf, type State } from "./state";
import { WEBHOOK_TABLES, Webhooks } from "./webhooks";

/**
 * One per execution (idFromName(executionId)): the authority on it (docs/DESIGN.md). This file
 * keeps the public methods, `apply` (the only place a status changes) and the alarm; beside it:
 * machine.ts (the transition table), effects.ts (what a change does to the state), deadlines.ts
 * (the clock), event-log.ts (events, out-of-order hold, followers), webhooks.ts (which events
 * each callback is owed), outbox.ts (write-through to the D1 index, the dispatcher and the
 * webhooks' queue, in order), lease-body.ts and host-stats.ts (pure).
 */
export class Execution extends DurableObject<Env> implements ExecutionRpc {
  private readonly sql: SqlStorage;
  private s: State | null;
  private armedAt: number | null = null;
  private readonly log: EventLog;
  private readonly webhooks: Webhooks;
  private readonly outbox: Outbox;
  /** The start's read of the job, for a lease granted at once (memory only). */
  readonly heldJob = new HeldJob();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(STATE_TABLE + EVENT_TABLES + WEBHOOK_TABLES);
    this.s = loadState(this.sql);
    this.webhooks = new Webhooks(this.sql);
    // Every stored event is offered to the callbacks in the same write (so the outbox keeps it).
    this.log = new EventLog(this.sql, (e) => this.webhooks.stored(this.s!, e, () => viewOf(this.s!)));
    this.outbox = new Outbox({ env, current: () => this.s, indexRow: () => indexRowOf(this.s!), save: () => this.save() });
  }

  // ---- user side (the Executions API) ----------------------------------------------------

  async init(input: InitInput): Promise<ExecutionView> {
    if (this.s) {
      if (this.s.id !== input.executionId) throw new Error("execution object already holds another execution");
      await this.outbox.flush();
      return viewOf(this.s);
    }
    const { hosts, sshPrivateKey, ...plain } = input.overrides ?? {};
    const secrets = await this.seal({ hosts, sshPrivateKey });
    if (this.s) return viewOf(this.s); // a concurrent init won while encrypting
    const now = Date.now();
    const s = newState(input, plain, secrets, now);
    this.s = s;
    this.heldJob.hold(input.jobRow, now);
    enterPending(s, now);
    this.log.statusChanged(s, null, now);
    s.version = 1;
    this.save();
    await this.afterChange();
    return viewOf(s);
  }

  // Methods that may refuse (404 scope, 409 state, 409 abandon) answer an Outcome: see worker/lib/problem.ts.

  view(scope?: Scope): Promise<Outcome<ExecutionView>> {
    return outcome(() => viewOf(this.scoped(scope)));
  }

  stop(scope: Scope, expiryDuration = 0): Promise<Outcome<ExecutionView>> {
    return this.userAction(scope, () => this.apply("stop", { expiryMs: expiryDuration > 0 ? expiryDuration * 1000 : null }));
  }

  kill(scope: Scope): Promise<Outcome<ExecutionView>> {
    return this.userAction(scope, () => this.apply("kill"));
  }

  restart(scope: Scope, overrides: SecretOverrides = {}, dispatcherKey?: string, pendingTimeoutMinutes?: number): Promise<Outcome<ExecutionView>> {
    return this.userAction(scope, async (s) => {
      this.allowed("restart", s); // before encrypting: a forbidden restart costs nothing
      const secrets = await this.seal(overrides);
      this.apply("restart", { secrets, dispatcherKey, pendingTimeoutMs: pendingTimeoutMinutes ? pendingTimeoutMinutes * 60_000 : undefined });
    });
  }

  events(scope: Scope | undefined, after: number, page: number, size: number): Promise<Outcome<EventPage>> {
    return outcome(() => this.log.page(this.scoped(scope), after, page, size));
  }

  async eventCount(): Promise<number> {
    return this.s ? this.log.count(this.s) : 0;
  }

  logChunk(scope: Scope | undefined, after: number, maxBytes = 256 * 1024, waitMs = 0): Promise<Outcome<LogChunk>> {
    return outcome(() => {
      this.scoped(scope);
      return this.log.chunk(() => this.s!, after, maxBytes, waitMs);
    });
  }

  async webhookContent(eventSeq: number): Promise<WebhookContent | null> {
    const s = this.s;
    const event = s ? this.log.one(s, eventSeq) : null;
    return event ? { event, execution: this.webhooks.finalView(eventSeq) } : null;
  }

  /** A user's action on the execution in `scope`: caught up with the clock first, answered with the view after. */
  private userAction(scope: Scope, act: (s: State) => void | Promise<void>): Promise<Outcome<ExecutionView>> {
    return outcome(async () => {
      await this.catchUp();
      const s = this.scoped(scope);
      await act(s);
      await this.afterChange();
      return viewOf(s);
    });
  }

  private async seal(overrides: SecretOverrides): Promise<string | null> {
    const secret = secretPart(overrides);
    return secret ? encryptJson(this.env, secret) : null;
  }

  // ---- agent side (docs/agent-protocol.md) ---------------------------------------------

  /**
   * PENDING → INITIALIZING for `agentId`; null when the execution is no longer PENDING (or cannot
   * run: its job is gone or its secrets cannot be read, which ends it INIT_FAILURE). A transient
   * failure throws, and the dispatcher queues it again.
   */
  async grantLease(agentId: string): Promise<LeaseBody | null> {
    const before = this.s;
    if (before?.status !== "PENDING") return null;
    let job: JobForLease | null = null;
    let secret: SecretOverrides = {};
    let inventory: LeaseBody["inventory"] = null;
    let unusable: string | null = null;
    try {
      const row = this.heldJob.take(before.attempt, Date.now());
      job = row ? await jobForLease(this.env, row) : await loadJobForLease(this.env, before.accountAlias, before.jobId);
      if (!job) unusable = "job_not_found";
      else {
        if (before.secrets) secret = await decryptJson<SecretOverrides>(this.env, before.secrets);
        // The inventory as it is now: a restart runs on today's hosts (its `limit` still names host ids).
        if (job.useDynamicInventory) inventory = await loadInventoryForLease(this.env, before.accountAlias);
      }
    } catch (e) {
      if (!(e instanceof SecretsError)) throw e;
      unusable = "secrets_unavailable";
    }
    const s = this.s!;
    if (s.status !== "PENDING") return null; // stopped or leased while the job was loading
    if (unusable || !job) {
      this.apply("unleasable", { reason: unusable ?? "job_not_found" });
      await this.afterChange();
      return null;
    }
    this.apply("lease", { agentId });
    // Built before the write-through: a stop arriving meanwhile must not change this lease's body.
    const lease = leaseBody(s, { leaseId: s.leaseId!, leaseExpiresAt: s.leaseExpiresAt! }, job, secret, inventory);
    // The agent gets its lease without waiting for the write-through: the start's own flush may
    // still be on its way (this grant can come from inside its `enqueue`), and the index row
    // (newest version wins) follows in its turn. The lease's deadline is armed first.
    await this.arm();
    void this.afterChange().catch((e: unknown) => log.error("execution: write-through after a lease failed", { executionId: s.id, error: e }));
    return lease;
  }

  heartbeat(agentId: string, ref: LeaseRef): Promise<Outcome<AgentAnswer>> {
    return outcome(async () => {
      await this.catchUp();
      const s = this.holder(agentId, ref);
      const back = this.renew(s);
      this.save();
      // Heartbeats leave the index alone, unless they end an unreachable spell it shows.
      if (back) await this.afterChange();
      else await this.arm();
      return this.answer(s);
    });
  }

  report(agentId: string, body: StatusReport): Promise<Outcome<AgentAnswer & { status: string; acceptedThrough?: number }>> {
    return outcome(async () => {
      await this.catchUp();
      const s = this.s;
      // With events, the answer says how far they are stored (as an upload's does).
      const through = (x: State) => (body.events ? { acceptedThrough: x.acceptedThrough } : {});
      // A retried terminal report (its answer was lost) is acknowledged, not abandoned.
      if (
        s &&
        s.agentId === agentId &&
        s.attempt === body.attempt &&
        s.endedLeaseId === body.leaseId &&
        body.status &&
        TERMINAL.has(s.status) &&
        s.status === body.status
      ) {
        return { status: s.status, command: null, ...through(s) };
      }
      const held = this.holder(agentId, body);
      this.renew(held);
      if (body.status) this.allowed(REPORT_CAUSE[body.status], held); // check before touching anything
      // The run's last events first: the status event follows them, and a follower sees them before the end.
      if (body.events?.length) this.storeEvents(held, (x, stored) => this.log.storeBatch(x, body.events!, stored));
      if (body.repositoryLog) {
        held.repositoryLog = body.repositoryLog;
        this.bump(held, Date.now());
      }
      if (body.status) this.apply(REPORT_CAUSE[body.status], { report: body });
      else this.save();
      await this.afterChange();
      return { status: held.status, ...this.answer(held), ...through(held) };
    });
  }

  uploadEvents(agentId: string, body: EventUpload): Promise<Outcome<AgentAnswer & { acceptedThrough: number }>> {
    return this.storeUpload(agentId, body, (s, stored) => this.log.storeBatch(s, body.events, stored));
  }

  uploadEventRun(agentId: string, ref: LeaseRef, run: EventRun): Promise<Outcome<AgentAnswer & { acceptedThrough: number }>> {
    return this.storeUpload(agentId, ref, (s, stored) => {
      // One statement when nothing but the log sees these events (no stats among them, no callback).
      if (run.count > 0 && run.first === s.acceptedThrough + 1 && s.callbacks.length === 0) this.log.storeRun(s, run.json, run.count, stored);
      else this.log.storeBatch(s, JSON.parse(run.json) as EventUpload["events"], stored);
    });
  }

  private storeUpload(
    agentId: string,
    ref: LeaseRef,
    write: (s: State, stored: (e: EventUpload["events"][number]) => void) => void,
  ): Promise<Outcome<AgentAnswer & { acceptedThrough: number }>> {
    return outcome(async () => {
      await this.catchUp();
      const s = this.holder(agentId, ref);
      this.renew(s);
      this.storeEvents(s, write);
      this.log.wake();
      await this.afterChange();
      return { acceptedThrough: s.acceptedThrough, ...this.answer(s) };
    });
  }

  /** Stores a batch in one transaction, with the host stats a playbook_on_stats among it carries. */
  private storeEvents(s: State, write: (s: State, stored: (e: EventUpload["events"][number]) => void) => void): void {
    let stats: Record<string, HostStats> | null = null;
    try {
      this.ctx.storage.transactionSync(() => {
        write(s, (e) => {
          if (e.event_type === "playbook_on_stats") stats = statsFrom(e.data) ?? stats;
        });
        if (stats) {
          applyStats(s, stats);
          this.bump(s, Date.now());
        }
        this.save();
      });
    } catch (e) {
      this.s = loadState(this.sql); // the transaction rolled back: so must the counters held in memory
      throw e;
    }
  }

  release(agentId: string, ref: LeaseRef): Promise<Outcome<AgentAnswer>> {
    return outcome(async () => {
      await this.catchUp();
      this.holder(agentId, ref);
      this.apply("release");
      await this.afterChange();
      return { command: null };
    });
  }

  async agentRevoked(agentId: string): Promise<void> {
    const s = this.s;
    if (!s || s.agentId !== agentId || !LEASED.has(s.status)) return;
    this.apply("lease_lost", { reason: "agent_revoked" });
    await this.afterChange();
  }

  /**
   * The dispatcher's word on why it waits (not a status change: the status stays PENDING). The
   * write-through is not awaited: the dispatcher may be telling this while this object awaits its
   * `enqueue`, and the outbox sends one thing at a time.
   */
  async waiting(reason: WaitingReason): Promise<void> {
    const s = this.s;
    // It waits for more than its turn: its lease comes later, and reads the job as it is then.
    if (reason.code !== "queued_behind") this.heldJob.drop();
    if (s?.status !== "PENDING" || sameReason(s.waiting, reason)) return;
    const now = Date.now();
    s.waiting = reason;
    this.log.waiting(s, reason.code, waitingText(reason, now), now);
    this.bump(s, now);
    this.save();
    this.log.wake();
    void this.afterChange().catch((e: unknown) => log.error("execution: write-through after a waiting reason failed", { executionId: s.id, error: e }));
  }

  /** Test-only introspection (test/worker/memory-bounded.test.ts): what this object holds in memory per caller. */
  memorySizes(): { followers: number } {
    return { followers: this.log.followerCount() };
  }

  // ---- clock ----------------------------------------------------------------------------

  override async alarm(): Promise<void> {
    this.armedAt = null;
    this.tick(Date.now());
    await this.afterChange();
  }

  async sweep(): Promise<ExecutionStatus | null> {
    if (!this.s) return null;
    this.armedAt = null;
    this.tick(Date.now());
    await this.afterChange();
    return this.s.status;
  }

  /** Applies every deadline that has passed, in order; true when something was applied. */
  private tick(now: number): boolean {
    const s = this.s;
    if (!s) return false;
    let applied = false;
    for (const d of DEADLINES) {
      if (!d.due(s, now)) continue;
      this.apply(d.cause, d.cause === "lease_lost" ? { reason: "agent_lost" } : d.cause === "pending_timeout" ? { detail: gaveUp(s, now) } : {});
      applied = true;
    }
    // Heartbeats stopped, the lease still runs: the execution stays as it is and says so.
    const unreachable = unreachableAt(s);
    if (unreachable !== null && unreachable <= now) {
      s.unreachableSince = s.lastSeenAt ?? null;
      this.bump(s, now);
      this.save();
      applied = true;
    }
    return applied;
  }

  /** A late alarm must not let a lapsed lease or deadline act as if still valid. */
  private async catchUp(): Promise<void> {
    if (this.tick(Date.now())) await this.afterChange();
  }

  /** After a change: write through (index, dispatcher), then set the alarm to the earliest deadline. */
  private async afterChange(): Promise<void> {
    await this.outbox.flush();
    await this.arm();
  }

  private async arm(): Promise<void> {
    if (!this.s) return;
    const at = nextAlarm(this.s);
    if (at === this.armedAt) return;
    this.armedAt = at;
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }

  // ---- transitions ----------------------------------------------------------------------

  private allowed(cause: Cause, s: State): ExecutionStatus {
    const to = target(cause, s.status, s.started);
    if (to === null) throw conflict(`The execution is ${s.status}; '${CAUSE_VERB[cause]}' is not allowed in that state.`);
    return to;
  }

  /** The one place a status changes: checks the table, applies the effects, records it. */
  private apply(cause: Cause, opts: ApplyOptions = {}): void {
    const s = this.s!;
    const from = s.status;
    const to = this.allowed(cause, s);
    const now = Date.now();
    causeEffects(cause, to, s, opts, now);
    if (to === from) {
      this.save();
      return;
    }
    s.status = to;
    s.reason = reasonFor(cause, to, from, s.reason, opts.reason ?? opts.report?.reason);
    if (to === "PENDING") enterPending(s, now);
    if (to === "KILLING") s.killDeadline ??= now + KILL_CONFIRM_MS;
    if (TERMINAL.has(to)) {
      enterTerminal(s, now);
      this.log.dropHeld();
    }
    this.log.statusChanged(s, from, now, opts.detail ?? opts.report?.detail);
    this.bump(s, now);
    this.save();
    this.log.wake();
  }

  // ---- helpers --------------------------------------------------------------------------

  private scoped(scope?: Scope): State {
    const s = this.s;
    if (!s) throw notFound("No such execution.");
    if (scope && (s.accountAlias !== scope.accountAlias || (scope.jobId != null && s.jobId !== scope.jobId))) throw notFound("No such execution.");
    return s;
  }

  /** The caller must hold the current lease (its id and attempt), else it must abandon its run. */
  private holder(agentId: string, ref: LeaseRef): State {
    const s = this.s;
    if (!s || !LEASED.has(s.status) || s.agentId !== agentId || s.attempt !== ref.attempt || s.leaseId !== ref.leaseId) {
      throw abandon("This agent does not hold the execution's current lease: abandon the run.");
    }
    return s;
  }

  /**
   * Any call of the holder renews its lease for the lost-agent window from now. True when it ends
   * an unreachable spell (what the execution answers changed).
   */
  private renew(s: State): boolean {
    const now = Date.now();
    s.leaseExpiresAt = now + lostAgentWindowMs(this.env);
    s.lastSeenAt = now;
    if (s.unreachableSince == null) return false;
    s.unreachableSince = null;
    this.bump(s, now);
    return true;
  }

  private answer(s: State): AgentAnswer {
    const command: AgentCommand = s.status === "STOPPING" ? "stop" : s.status === "KILLING" ? "kill" : null;
    return { leaseExpiresAt: s.leaseExpiresAt ?? undefined, command };
  }

  private bump(s: State, now: number): void {
    s.version += 1;
    s.updatedTime = now;
  }

  private save(): void {
    if (this.s) saveState(this.sql, this.s);
  }
}

/** What a pending timeout says: how long it waited, and the last reason it was given. */
function gaveUp(s: State, now: number): string {
  const minutes = Math.round((s.pendingTimeoutMs ?? 0) / 60_000);
  return `no agent took it within ${minutes} minute${minutes === 1 ? "" : "s"}; last: ${waitingText(s.waiting ?? { code: "queued" }, now)}`;
}
