import { DurableObject } from "cloudflare:workers";
import { HEARTBEAT_INTERVAL_MS, LEASE_ACK_MS, LEASE_TTL_MS, type AgentAnswer, type AgentCommand, type DispatchItem, type JobForLease, type StartOverrides } from "./domain/contracts";
import { writeIndex } from "./db/executions";
import { loadInventoryForLease } from "./domain/inventory";
import { loadJobForLease } from "./domain/jobs";
import { decryptJson, encryptJson, SecretsError } from "./lib/secrets";
import { conflict, notFound, outcome, ProblemError, type Outcome } from "./lib/problem";
import {
  LEASED_STATUSES,
  type AgentEvent,
  type EventUpload,
  type ExecutionStatus,
  type ExecutionView,
  type HostStats,
  type JsonField,
  type LeaseBody,
  type LeaseRef,
  type RepositoryLog,
  type StatusEvent,
  type StatusReport,
} from "./schemas/execution";
import { repositoryUrlSecret } from "./schemas/job";

/**
 * One per execution (idFromName(executionId)): the authority on it. It holds the state machine
 * (TRANSITIONS below, the only place a status changes), the agent's lease, the TTL and stop/kill
 * deadlines (one alarm slot at the earliest), the event log (SQLite in the object) and the live
 * log followers. Every change of what the API answers is written through to the D1 index with
 * the object's version counter; dispatcher calls go through the same retried outbox.
 */

// ---- the state machine --------------------------------------------------------------------

/** What makes a status change. User actions, agent reports, the clock and the dispatcher. */
export type Cause =
  | "lease" // the dispatcher hands the execution to an agent
  | "unleasable" // the job vanished, or its secrets cannot be read, before it could be leased
  | "initializing" // agent: INITIALIZING (a no-op confirmation)
  | "running" // agent: the playbook started
  | "succeeded" // agent: SUCCESS
  | "failed" // agent: FAILURE
  | "init_failed" // agent: INIT_FAILURE
  | "stopped" // agent: STOPPED
  | "killed" // agent: KILLED
  | "stop" // user: graceful stop
  | "kill" // user: kill
  | "restart" // user: run a failed execution again
  | "ttl" // clock: executionTtl ran out
  | "escalate" // clock: a stop did not finish in time
  | "kill_timeout" // clock: the agent never confirmed a kill
  | "lease_lost" // clock or revocation: no heartbeat within the lease
  | "release"; // agent: hands back an execution it is not running

/**
 * THE transition table: for each cause, the states it is allowed in and the state it leads to.
 * A (cause, state) pair that is not listed is forbidden (409). `{ to, unlessStarted }` rows apply
 * only while the playbook has not started in this lease.
 */
type Target = ExecutionStatus | { to: ExecutionStatus; onlyIfNotStarted: true };
export const TRANSITIONS: Record<Cause, Partial<Record<ExecutionStatus, Target>>> = {
  lease: { PENDING: "INITIALIZING" },
  unleasable: { PENDING: "INIT_FAILURE" },
  initializing: { INITIALIZING: "INITIALIZING", STOPPING: "STOPPING", KILLING: "KILLING" },
  running: { INITIALIZING: "RUNNING", RUNNING: "RUNNING", STOPPING: "STOPPING", KILLING: "KILLING" },
  // A run may end on its own just before a stop or kill reaches it: the real outcome wins.
  succeeded: { RUNNING: "SUCCESS", STOPPING: "SUCCESS", KILLING: "SUCCESS" },
  failed: { RUNNING: "FAILURE", STOPPING: "FAILURE", KILLING: "FAILURE" },
  init_failed: { INITIALIZING: "INIT_FAILURE", STOPPING: "INIT_FAILURE", KILLING: "INIT_FAILURE" },
  // An agent stops or kills on its own too (SIGTERM, its local TTL backstop).
  stopped: { INITIALIZING: "STOPPED", RUNNING: "STOPPED", STOPPING: "STOPPED", KILLING: "STOPPED" },
  killed: { INITIALIZING: "KILLED", RUNNING: "KILLED", STOPPING: "KILLED", KILLING: "KILLED" },
  stop: { PENDING: "STOPPED", INITIALIZING: "STOPPING", RUNNING: "STOPPING", STOPPING: "STOPPING" },
  kill: { PENDING: "KILLED", INITIALIZING: "KILLING", RUNNING: "KILLING", STOPPING: "KILLING", KILLING: "KILLING" },
  restart: { FAILURE: "PENDING", INIT_FAILURE: "PENDING" },
  ttl: { PENDING: "STOPPED", INITIALIZING: "STOPPING", RUNNING: "STOPPING", STOPPING: "STOPPING", KILLING: "KILLING" },
  escalate: { STOPPING: "KILLING" },
  kill_timeout: { KILLING: "KILLED" },
  lease_lost: { INITIALIZING: "PENDING", RUNNING: "FAILURE", STOPPING: "STOPPED", KILLING: "KILLED" },
  release: { INITIALIZING: "PENDING", STOPPING: { to: "STOPPED", onlyIfNotStarted: true }, KILLING: "KILLED" },
};

export const TERMINAL: ReadonlySet<ExecutionStatus> = new Set(["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"]);
/** States in which an agent holds the lease. */
const LEASED: ReadonlySet<ExecutionStatus> = new Set(LEASED_STATUSES);

/** After the TTL, a graceful stop gets this long before it escalates (the agent's own backstop is 30 s too). */
export const TTL_GRACE_MS = 30_000;
/** A kill the agent does not confirm within a lease's length ends KILLED anyway. */
export const KILL_CONFIRM_MS = LEASE_TTL_MS;
/** Index/dispatcher write-through retries back off from here to a minute. */
const RETRY_BASE_MS = 2_000;
const RETRY_MAX_MS = 60_000;
/** Out-of-order events are held at most this far ahead of the last stored one. */
const MAX_HELD_AHEAD = 10_000;

type Trigger = "api" | "schedule" | "restart";
type DispatchOp = { op: "enqueue" | "remove" | "finished"; at: number };
/** Per-execution overrides without secrets (kept in plain text). */
type PlainOverrides = Pick<StartOverrides, "properties" | "playbookTags" | "check" | "diff">;
/** The secret part of the overrides (stored encrypted, dropped when the execution ends). */
type SecretOverrides = Pick<StartOverrides, "hosts" | "sshPrivateKey">;

interface State {
  id: string;
  accountAlias: string;
  jobId: string;
  status: ExecutionStatus;
  reason: string | null;
  /** +1 on every change of what the API answers; the D1 index only takes newer versions. */
  version: number;
  indexedVersion: number;
  attempt: number;
  trigger: Trigger;
  scheduleId: string | null;
  createdTime: number;
  updatedTime: number;
  timers: { start: number; end: number | null }[];
  failedHosts: string[];
  hostStats: Record<string, HostStats>;
  repositoryLog: RepositoryLog | null;
  agentId: string | null;
  leaseId: string | null;
  /** The lease that ended the execution: its retried terminal report is acknowledged, not abandoned. */
  endedLeaseId?: string | null;
  /** +1 per lease handed out: agent event `seq` numbers are scoped to one lease. */
  leaseGen: number;
  leaseExpiresAt: number | null;
  started: boolean;
  acceptedThrough: number;
  executionTtl: number;
  ttlAt: number;
  ttlFired: boolean;
  stopEscalateAt: number | null;
  killDeadline: number | null;
  dispatcherKey: string;
  /** Sitting in the dispatcher's queue / holding one of its concurrency slots. */
  queued: boolean;
  slotHeld: boolean;
  outbox: DispatchOp[];
  retryAt: number | null;
  retries: number;
  overrides: PlainOverrides;
  secrets: string | null;
  limit: string[] | null;
  nextSeq: number;
}

export interface InitInput {
  executionId: string;
  accountAlias: string;
  jobId: string;
  trigger: "api" | "schedule";
  scheduleId?: string | null;
  executionTtl: number;
  dispatcherKey: string;
  overrides?: StartOverrides;
}

/** Which execution a user route is asking about: anything else is a 404. */
export interface Scope {
  accountAlias: string;
  jobId?: string | null;
}

/** A StatusEvent as it crosses RPC: `data` still JSON text (parsed by `parseStatusEvent`). */
export type StatusEventWire = Omit<StatusEvent, "data"> & { data: string | null };
export function parseStatusEvent(e: StatusEventWire): StatusEvent {
  return { ...e, data: e.data === null ? null : (JSON.parse(e.data) as unknown) };
}

export interface LogChunk {
  text: string;
  /** The sequence of the last event included (resume after it). */
  through: number;
  /** The execution has ended and nothing after `through` remains. */
  ended: boolean;
  status: ExecutionStatus;
}

interface EventRow extends Record<string, SqlStorageValue> {
  seq: number;
  ts: number;
  type: string;
  host: string | null;
  task: string | null;
  play: string | null;
  stdout: string;
  data: string | null;
}

export function abandon(detail: string): ProblemError {
  return new ProblemError(409, "Conflict", detail, undefined, undefined, { command: "abandon" });
}

export class Execution extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private s: State | null;
  private armedAt: number | null = null;
  private flushChain: Promise<void> = Promise.resolve();
  private waiters = new Set<() => void>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        type TEXT NOT NULL,
        host TEXT, task TEXT, play TEXT,
        stdout TEXT NOT NULL DEFAULT '',
        data TEXT,
        lease_gen INTEGER NOT NULL,
        agent_seq INTEGER
      );
      CREATE UNIQUE INDEX IF NOT EXISTS events_by_agent_seq ON events (lease_gen, agent_seq) WHERE agent_seq IS NOT NULL;
      CREATE TABLE IF NOT EXISTS held (lease_gen INTEGER NOT NULL, agent_seq INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (lease_gen, agent_seq)) WITHOUT ROWID;
    `);
    this.s = this.load();
  }

  private load(): State | null {
    const row = this.sql.exec<{ json: string }>("SELECT json FROM state WHERE id = 1").toArray()[0];
    return row ? (JSON.parse(row.json) as State) : null;
  }

  // ---- user side (the Executions API) ----------------------------------------------------

  /** Creates the execution (PENDING) and queues it. Idempotent for the same id. */
  async init(input: InitInput): Promise<ExecutionView> {
    if (this.s) {
      if (this.s.id !== input.executionId) throw new Error("execution object already holds another execution");
      await this.flush();
      return this.viewOf(this.s);
    }
    const { hosts, sshPrivateKey, ...plain } = input.overrides ?? {};
    const secret: SecretOverrides = {};
    if (hosts?.some((h) => h.sshPrivateKey)) secret.hosts = hosts.filter((h) => h.sshPrivateKey).map((h) => ({ id: h.id, sshPrivateKey: h.sshPrivateKey }));
    if (sshPrivateKey) secret.sshPrivateKey = sshPrivateKey;
    const secrets = Object.keys(secret).length ? await encryptJson(this.env, secret) : null;
    if (this.s) return this.viewOf(this.s); // a concurrent init won while encrypting
    const now = Date.now();
    const s: State = {
      id: input.executionId,
      accountAlias: input.accountAlias,
      jobId: input.jobId,
      status: "PENDING",
      reason: null,
      version: 0,
      indexedVersion: 0,
      attempt: 1,
      trigger: input.trigger,
      scheduleId: input.scheduleId ?? null,
      createdTime: now,
      updatedTime: now,
      timers: [{ start: now, end: null }],
      failedHosts: [],
      hostStats: {},
      repositoryLog: null,
      agentId: null,
      leaseId: null,
      endedLeaseId: null,
      leaseGen: 0,
      leaseExpiresAt: null,
      started: false,
      acceptedThrough: 0,
      executionTtl: input.executionTtl,
      ttlAt: now + input.executionTtl * 60_000,
      ttlFired: false,
      stopEscalateAt: null,
      killDeadline: null,
      dispatcherKey: input.dispatcherKey,
      queued: false,
      slotHeld: false,
      outbox: [],
      retryAt: null,
      retries: 0,
      overrides: plain,
      secrets,
      limit: null,
      nextSeq: 1,
    };
    this.s = s;
    this.enterPending(s, now);
    this.statusEvent(s, null, now);
    s.version = 1;
    this.save();
    await this.afterChange();
    return this.viewOf(s);
  }

  // Methods that may refuse (404 scope, 409 state, 409 abandon) answer an Outcome: see worker/lib/problem.ts.

  view(scope?: Scope): Promise<Outcome<ExecutionView>> {
    return outcome(() => this.viewOf(this.scoped(scope)));
  }

  stop(scope: Scope, expiryDuration = 0): Promise<Outcome<ExecutionView>> {
    return outcome(async () => {
      await this.catchUp();
      const s = this.scoped(scope);
      this.apply("stop", { expiryMs: expiryDuration > 0 ? expiryDuration * 1000 : null });
      await this.afterChange();
      return this.viewOf(s);
    });
  }

  kill(scope: Scope): Promise<Outcome<ExecutionView>> {
    return outcome(async () => {
      await this.catchUp();
      const s = this.scoped(scope);
      this.apply("kill");
      await this.afterChange();
      return this.viewOf(s);
    });
  }

  /** `dispatcherKey`: where the job routes now (agents may have appeared since the first run). */
  restart(scope: Scope, overrides: SecretOverrides = {}, dispatcherKey?: string): Promise<Outcome<ExecutionView>> {
    return outcome(() => this.restartNow(scope, overrides, dispatcherKey));
  }

  private async restartNow(scope: Scope, overrides: SecretOverrides, dispatcherKey?: string): Promise<ExecutionView> {
    await this.catchUp();
    const s = this.scoped(scope);
    this.allowed("restart", s); // before encrypting: a forbidden restart costs nothing
    const secret: SecretOverrides = {};
    if (overrides.hosts?.some((h) => h.sshPrivateKey)) secret.hosts = overrides.hosts.filter((h) => h.sshPrivateKey);
    if (overrides.sshPrivateKey) secret.sshPrivateKey = overrides.sshPrivateKey;
    const secrets = Object.keys(secret).length ? await encryptJson(this.env, secret) : null;
    this.apply("restart", { secrets, dispatcherKey });
    await this.afterChange();
    return this.viewOf(s);
  }

  /** Status events in sequence order: page `page` of `size` after sequence `after` (keyset). */
  events(scope: Scope | undefined, after: number, page: number, size: number): Promise<Outcome<{ totalSize: number; results: StatusEventWire[] }>> {
    return outcome(() => this.eventPage(this.scoped(scope), after, page, size));
  }

  private eventPage(s: State, after: number, page: number, size: number): { totalSize: number; results: StatusEventWire[] } {
    const last = s.nextSeq - 1;
    const from = after + page * size; // sequences are dense (1, 2, …), so a page is a key range
    const rows = this.sql
      .exec<EventRow>("SELECT seq, ts, type, host, task, play, stdout, data FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", from, from + size)
      .toArray();
    return { totalSize: Math.max(0, last - after), results: rows.map((r) => this.toStatusEvent(s, r)) };
  }

  async eventCount(): Promise<number> {
    return this.s ? this.s.nextSeq - 1 : 0;
  }

  /**
   * The log after sequence `after`, at most about `maxBytes` (at least one event). With `waitMs`,
   * waits that long for something new when nothing is there yet and the execution is live.
   */
  logChunk(scope: Scope | undefined, after: number, maxBytes = 256 * 1024, waitMs = 0): Promise<Outcome<LogChunk>> {
    return outcome(() => this.logAfter(this.scoped(scope), after, maxBytes, waitMs));
  }

  private async logAfter(s: State, after: number, maxBytes: number, waitMs: number): Promise<LogChunk> {
    if (waitMs > 0 && s.nextSeq - 1 <= after && !TERMINAL.has(s.status)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(waitMs, 30_000));
        this.waiters.add(done);
      });
    }
    let text = "";
    let through = after;
    // The cursor streams rows: stop reading once the chunk is full.
    for (const r of this.sql.exec<{ seq: number; stdout: string }>("SELECT seq, stdout FROM events WHERE seq > ? ORDER BY seq", after)) {
      if (text.length > 0 && text.length + r.stdout.length > maxBytes) break;
      text += r.stdout;
      through = r.seq;
      if (text.length >= maxBytes) break;
    }
    const state = this.s!;
    return { text, through, ended: TERMINAL.has(state.status) && through >= state.nextSeq - 1, status: state.status };
  }

  // ---- agent side (docs/agent-protocol.md) ---------------------------------------------

  /**
   * PENDING → INITIALIZING for `agentId`; null when the execution is no longer PENDING (or cannot
   * run: its job is gone or its secrets cannot be read, which ends it INIT_FAILURE). A transient
   * failure throws, and the dispatcher queues it again.
   */
  async grantLease(agentId: string): Promise<LeaseBody | null> {
    const before = this.s;
    if (!before || before.status !== "PENDING") return null;
    let job: JobForLease | null = null;
    let secret: SecretOverrides = {};
    let inventory: LeaseBody["inventory"] = null;
    let unusable: string | null = null;
    try {
      job = await loadJobForLease(this.env, before.accountAlias, before.jobId);
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
    const merged = mergeJob(job, s.overrides, secret);
    const lease: LeaseBody = {
      executionId: s.id,
      attempt: s.attempt,
      leaseId: s.leaseId!,
      accountAlias: s.accountAlias,
      jobId: s.jobId,
      leaseExpiresAt: s.leaseExpiresAt!,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      deadline: s.ttlAt,
      job: merged,
      inventory,
      limit: s.limit,
      check: s.overrides.check ?? false,
      diff: s.overrides.diff ?? false,
      secrets: secretValues(merged),
    };
    await this.afterChange();
    return lease;
  }

  heartbeat(agentId: string, ref: LeaseRef): Promise<Outcome<AgentAnswer>> {
    return outcome(async () => {
      await this.catchUp();
      const s = this.holder(agentId, ref);
      this.renew(s);
      this.save();
      await this.arm();
      return this.answer(s);
    });
  }

  report(agentId: string, body: StatusReport): Promise<Outcome<AgentAnswer & { status: string }>> {
    return outcome(() => this.applyReport(agentId, body));
  }

  private async applyReport(agentId: string, body: StatusReport): Promise<AgentAnswer & { status: string }> {
    await this.catchUp();
    const s = this.s;
    // A retried terminal report (its answer was lost) is acknowledged, not abandoned.
    if (s && s.agentId === agentId && s.attempt === body.attempt && s.endedLeaseId === body.leaseId && body.status && TERMINAL.has(s.status) && s.status === body.status) {
      return { status: s.status, command: null };
    }
    const held = this.holder(agentId, body);
    this.renew(held);
    if (body.status) this.allowed(REPORT_CAUSE[body.status], held); // check before touching anything
    if (body.repositoryLog) {
      held.repositoryLog = body.repositoryLog;
      this.bump(held, Date.now());
    }
    if (body.status) this.apply(REPORT_CAUSE[body.status], { report: body });
    else this.save();
    await this.afterChange();
    return { status: held.status, ...this.answer(held) };
  }

  uploadEvents(agentId: string, body: EventUpload): Promise<Outcome<AgentAnswer & { acceptedThrough: number }>> {
    return outcome(() => this.storeEvents(agentId, body));
  }

  private async storeEvents(agentId: string, body: EventUpload): Promise<AgentAnswer & { acceptedThrough: number }> {
    await this.catchUp();
    const s = this.holder(agentId, body);
    this.renew(s);
    const sorted = [...body.events].sort((a, b) => a.seq - b.seq);
    let stats: Record<string, HostStats> | null = null;
    try {
      this.ctx.storage.transactionSync(() => {
        const store = (e: AgentEvent) => {
          this.insertEvent(s, {
            ts: e.timestamp,
            type: e.event_type,
            host: e.host ?? null,
            task: e.task ?? null,
            play: e.play ?? null,
            stdout: e.stdout ?? "",
            data: e.data === undefined ? null : JSON.stringify(e.data),
            agentSeq: e.seq,
          });
          s.acceptedThrough = e.seq;
          if (e.event_type === "playbook_on_stats") stats = statsFrom(e.data) ?? stats;
        };
        for (const e of sorted) {
          if (e.seq <= s.acceptedThrough || e.seq > s.acceptedThrough + MAX_HELD_AHEAD) continue; // a duplicate, or absurdly far ahead
          if (e.seq === s.acceptedThrough + 1) store(e);
          else this.sql.exec("INSERT OR IGNORE INTO held (lease_gen, agent_seq, json) VALUES (?, ?, ?)", s.leaseGen, e.seq, JSON.stringify(e));
        }
        // A gap that this batch filled releases the held events behind it, in order.
        for (;;) {
          const next = this.sql
            .exec<{ json: string }>("SELECT json FROM held WHERE lease_gen = ? AND agent_seq = ?", s.leaseGen, s.acceptedThrough + 1)
            .toArray()[0];
          if (!next) break;
          store(JSON.parse(next.json) as AgentEvent);
        }
        this.sql.exec("DELETE FROM held WHERE lease_gen = ? AND agent_seq <= ?", s.leaseGen, s.acceptedThrough);
        if (stats) {
          applyStats(s, stats);
          this.bump(s, Date.now());
        }
        this.save();
      });
    } catch (e) {
      this.s = this.load(); // the transaction rolled back: so must the counters held in memory
      throw e;
    }
    this.wake();
    await this.afterChange();
    return { acceptedThrough: s.acceptedThrough, ...this.answer(s) };
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

  /** The agent's credential was revoked: its lease is lost at once. */
  async agentRevoked(agentId: string): Promise<void> {
    const s = this.s;
    if (!s || s.agentId !== agentId || !LEASED.has(s.status)) return;
    this.apply("lease_lost", { reason: "agent_revoked" });
    await this.afterChange();
  }

  // ---- clock ----------------------------------------------------------------------------

  override async alarm(): Promise<void> {
    this.armedAt = null;
    this.tick(Date.now());
    await this.afterChange();
  }

  /** The cron sweep's poke: run what a missed alarm would have, and re-arm. */
  async sweep(): Promise<ExecutionStatus | null> {
    if (!this.s) return null;
    this.armedAt = null;
    this.tick(Date.now());
    await this.afterChange();
    return this.s.status;
  }

  /** Applies every deadline that has passed; true when something was applied. */
  private tick(now: number): boolean {
    const s = this.s;
    if (!s) return false;
    const due: Cause[] = [];
    const step = (cause: Cause, when: boolean) => {
      if (!when) return;
      this.apply(cause, cause === "lease_lost" ? { reason: "agent_lost" } : {});
      due.push(cause);
    };
    step("lease_lost", LEASED.has(s.status) && s.leaseExpiresAt !== null && s.leaseExpiresAt <= now);
    step("kill_timeout", s.status === "KILLING" && s.killDeadline !== null && s.killDeadline <= now);
    step("escalate", s.status === "STOPPING" && s.stopEscalateAt !== null && s.stopEscalateAt <= now);
    step("ttl", !TERMINAL.has(s.status) && !s.ttlFired && s.ttlAt <= now);
    return due.length > 0;
  }

  /** A late alarm must not let a lapsed lease or deadline act as if still valid. */
  private async catchUp(): Promise<void> {
    if (this.tick(Date.now())) await this.afterChange();
  }

  // ---- transitions ----------------------------------------------------------------------

  private target(cause: Cause, s: State): ExecutionStatus | null {
    const t = TRANSITIONS[cause][s.status];
    if (t === undefined) return null;
    if (typeof t === "string") return t;
    return s.started ? null : t.to;
  }

  private allowed(cause: Cause, s: State): ExecutionStatus {
    const to = this.target(cause, s);
    if (to === null) throw conflict(`The execution is ${s.status}; '${CAUSE_VERB[cause]}' is not allowed in that state.`);
    return to;
  }

  /** The one place a status changes: checks the table, applies the entry effects, records it. */
  private apply(
    cause: Cause,
    opts: { agentId?: string; expiryMs?: number | null; report?: StatusReport; reason?: string; secrets?: string | null; dispatcherKey?: string } = {},
  ): void {
    const s = this.s!;
    const from = s.status;
    const to = this.allowed(cause, s);
    const now = Date.now();
    const report = opts.report;

    switch (cause) {
      case "stop":
        if (opts.expiryMs) s.stopEscalateAt = Math.min(s.stopEscalateAt ?? Infinity, now + opts.expiryMs);
        break;
      case "ttl":
        s.ttlFired = true;
        if (to === "STOPPING") s.stopEscalateAt = Math.min(s.stopEscalateAt ?? Infinity, now + TTL_GRACE_MS);
        break;
      case "running":
        s.started = true;
        break;
      case "unleasable":
        s.queued = false; // the dispatcher took it off its queue to hand it out
        break;
      case "lease":
        s.agentId = opts.agentId!;
        s.leaseId = crypto.randomUUID();
        s.leaseGen += 1;
        s.acceptedThrough = 0;
        s.started = false;
        s.queued = false; // the dispatcher took it off its queue to hand it out
        s.slotHeld = true;
        s.leaseExpiresAt = now + LEASE_ACK_MS; // the agent's first call renews it to LEASE_TTL_MS
        break;
      case "restart":
        s.attempt += 1;
        s.trigger = "restart";
        s.timers.push({ start: now, end: null });
        s.limit = s.failedHosts.length ? [...s.failedHosts] : null;
        s.ttlAt = now + s.executionTtl * 60_000;
        s.ttlFired = false;
        s.secrets = opts.secrets ?? null;
        s.agentId = null;
        // Undelivered calls still name the old dispatcher: switch only once they are through.
        if (opts.dispatcherKey && s.outbox.length === 0) s.dispatcherKey = opts.dispatcherKey;
        break;
    }
    if (report && TERMINAL.has(to)) {
      if (report.hostStats) applyStats(s, report.hostStats);
      if (report.failedHosts) s.failedHosts = [...new Set(report.failedHosts)];
    }

    if (to === from) {
      this.save();
      return;
    }
    s.status = to;
    s.reason = reasonFor(cause, to, from, s, opts.reason ?? report?.reason);
    if (to === "PENDING") this.enterPending(s, now);
    if (to === "KILLING") s.killDeadline ??= now + KILL_CONFIRM_MS;
    if (TERMINAL.has(to)) this.enterTerminal(s, now);
    this.statusEvent(s, from, now, report?.detail);
    this.bump(s, now);
    this.save();
    this.wake();
  }

  private enterPending(s: State, now: number): void {
    this.endLease(s, now);
    s.agentId = null;
    s.started = false;
    s.queued = true;
    s.outbox.push({ op: "enqueue", at: now });
  }

  private enterTerminal(s: State, now: number): void {
    const timer = s.timers[s.timers.length - 1];
    if (timer && timer.end === null) timer.end = now;
    if (s.queued) s.outbox.push({ op: "remove", at: now });
    s.queued = false;
    s.endedLeaseId = s.leaseId;
    this.endLease(s, now);
    s.secrets = null; // per-execution secrets never outlive it
    this.sql.exec("DELETE FROM held");
  }

  /** No lease any more: its dispatcher slot is given back, and the deadlines of a leased run go. */
  private endLease(s: State, now: number): void {
    if (s.slotHeld) s.outbox.push({ op: "finished", at: now });
    s.slotHeld = false;
    s.leaseId = null;
    s.leaseExpiresAt = null;
    s.stopEscalateAt = null;
    s.killDeadline = null;
  }

  private statusEvent(s: State, from: ExecutionStatus | null, now: number, detail?: string): void {
    if (detail && detail.length > 4000) detail = `${detail.slice(0, 4000)}…`;
    const line = `[runner] execution ${s.status}${s.reason ? ` (${s.reason})` : ""}${detail ? `: ${detail}` : ""}\n`;
    this.insertEvent(s, {
      ts: now,
      type: "execution_status",
      host: null,
      task: null,
      play: null,
      stdout: line,
      data: JSON.stringify({ status: s.status, previous_status: from, reason: s.reason, attempt: s.attempt, agent_id: s.agentId, detail: detail ?? null }),
      agentSeq: null,
    });
  }

  private insertEvent(
    s: State,
    e: { ts: number; type: string; host: string | null; task: string | null; play: string | null; stdout: string; data: string | null; agentSeq: number | null },
  ): void {
    this.sql.exec(
      "INSERT INTO events (seq, ts, type, host, task, play, stdout, data, lease_gen, agent_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      s.nextSeq,
      e.ts,
      e.type,
      e.host,
      e.task,
      e.play,
      e.stdout,
      e.data,
      s.leaseGen,
      e.agentSeq,
    );
    s.nextSeq += 1;
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

  private renew(s: State): void {
    s.leaseExpiresAt = Date.now() + LEASE_TTL_MS;
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
    if (this.s) this.sql.exec("INSERT OR REPLACE INTO state (id, json) VALUES (1, ?)", JSON.stringify(this.s));
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** After a change: write through (index, dispatcher), then set the alarm to the earliest deadline. */
  private async afterChange(): Promise<void> {
    await this.flush();
    await this.arm();
  }

  private async arm(): Promise<void> {
    const s = this.s;
    if (!s) return;
    const times: number[] = [];
    if (LEASED.has(s.status) && s.leaseExpiresAt !== null) times.push(s.leaseExpiresAt);
    if (s.status === "KILLING" && s.killDeadline !== null) times.push(s.killDeadline);
    if (s.status === "STOPPING" && s.stopEscalateAt !== null) times.push(s.stopEscalateAt);
    if (!TERMINAL.has(s.status) && !s.ttlFired) times.push(s.ttlAt);
    if (s.retryAt !== null) times.push(s.retryAt);
    const at = times.length ? Math.min(...times) : null;
    if (at === this.armedAt) return;
    this.armedAt = at;
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }

  /** Single-flight: index writes and dispatcher calls leave in the order they were made. */
  private flush(): Promise<void> {
    const run = this.flushChain.then(() => this.flushOnce());
    this.flushChain = run.catch(() => undefined);
    return this.flushChain;
  }

  private async flushOnce(): Promise<void> {
    const s = this.s;
    if (!s) return;
    let failed = false;
    if (s.indexedVersion < s.version) {
      const version = s.version;
      try {
        await writeIndex(this.env.DB, {
          id: s.id,
          accountAlias: s.accountAlias,
          jobId: s.jobId,
          status: s.status,
          trigger: s.trigger,
          scheduleId: s.scheduleId,
          agentId: s.agentId,
          reason: s.reason,
          createdTime: s.createdTime,
          updatedTime: s.updatedTime,
          version,
          eventCount: s.nextSeq - 1,
          view: this.viewOf(s),
        });
        s.indexedVersion = Math.max(s.indexedVersion, version);
      } catch (e) {
        failed = true;
        console.error("execution: index write-through failed; retrying", s.id, e instanceof Error ? e.message : "error");
      }
    }
    while (!failed && s.outbox.length) {
      const op = s.outbox[0]!;
      try {
        const stub = this.env.DISPATCHER.get(this.env.DISPATCHER.idFromName(s.dispatcherKey));
        if (op.op === "enqueue") {
          const item: DispatchItem = { executionId: s.id, accountAlias: s.accountAlias, jobId: s.jobId, enqueuedAt: op.at };
          await stub.enqueue(item);
        } else if (op.op === "remove") await stub.remove(s.id);
        else await stub.finished(s.id);
        s.outbox.shift();
      } catch (e) {
        failed = true;
        console.error("execution: dispatcher call failed; retrying", s.id, op.op, e instanceof Error ? e.message : "error");
      }
    }
    if (failed) {
      s.retries += 1;
      s.retryAt = Date.now() + Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(s.retries - 1, 5));
    } else {
      s.retries = 0;
      s.retryAt = null;
    }
    this.save();
  }

  private viewOf(s: State): ExecutionView {
    const job = `/jobs/${encodeURIComponent(s.accountAlias)}/${encodeURIComponent(s.jobId)}`;
    const self = `${job}/executions/${encodeURIComponent(s.id)}`;
    return {
      execution_id: s.id,
      job_id: s.jobId,
      account_alias: s.accountAlias,
      status: s.status,
      timers: s.timers.map((t) => ({ ...t })),
      failed_hosts: [...s.failedHosts],
      host_stats: structuredClone(s.hostStats),
      repository_log: s.repositoryLog ? { ...s.repositoryLog } : null,
      is_vpn_established: false,
      agent_id: s.agentId,
      trigger: s.trigger,
      schedule_id: s.scheduleId,
      reason: s.reason,
      attempt: s.attempt,
      created_time: s.createdTime,
      links: { self, job, events: `${self}/events`, log: `${self}/log` },
    };
  }

  private toStatusEvent(s: State, r: EventRow): StatusEventWire {
    return {
      id: `${s.id}:${r.seq}`,
      sequence: r.seq,
      timestamp: r.ts,
      event_type: r.type,
      job_id: s.jobId,
      execution_id: s.id,
      account_alias: s.accountAlias,
      host: r.host,
      task: r.task,
      play: r.play,
      message: r.stdout,
      data: r.data,
      notifications: [],
    };
  }
}

// ---- pure helpers ---------------------------------------------------------------------------

const REPORT_CAUSE: Record<NonNullable<StatusReport["status"]>, Cause> = {
  INITIALIZING: "initializing",
  RUNNING: "running",
  SUCCESS: "succeeded",
  FAILURE: "failed",
  INIT_FAILURE: "init_failed",
  STOPPED: "stopped",
  KILLED: "killed",
};

const CAUSE_VERB: Record<Cause, string> = {
  lease: "lease",
  unleasable: "lease",
  initializing: "report INITIALIZING",
  running: "report RUNNING",
  succeeded: "report SUCCESS",
  failed: "report FAILURE",
  init_failed: "report INIT_FAILURE",
  stopped: "report STOPPED",
  killed: "report KILLED",
  stop: "stop",
  kill: "kill",
  restart: "restart",
  ttl: "expire",
  escalate: "escalate",
  kill_timeout: "end an unconfirmed kill",
  lease_lost: "lose the lease",
  release: "release",
};

/** The reason shown for STOPPING/KILLING and terminal states; null for the others. */
function reasonFor(cause: Cause, to: ExecutionStatus, from: ExecutionStatus, s: State, given: string | undefined): string | null {
  if (to === "PENDING" || to === "INITIALIZING" || to === "RUNNING" || to === "SUCCESS") return null;
  // Whatever put it into STOPPING/KILLING names the end too (a TTL stop ends ttl_expired).
  const pending = from === "STOPPING" || from === "KILLING" ? s.reason : null;
  switch (cause) {
    case "stop":
      return "stopped";
    case "kill":
      return "killed";
    case "ttl":
      return "ttl_expired";
    case "escalate":
      return s.reason === "ttl_expired" ? "ttl_expired" : "stop_expired";
    case "kill_timeout":
      return "kill_unconfirmed";
    case "lease_lost":
      return given ?? "agent_lost";
    case "unleasable":
      return given ?? "job_not_found";
    case "failed":
      return given ?? "playbook_failed";
    case "init_failed":
      return given ?? "init_failed";
    case "stopped":
    case "killed":
    case "release":
      return pending ?? given ?? (cause === "killed" ? "killed" : "stopped");
    default:
      return given ?? null;
  }
}

/** JSON from the job and the start body, as the lease's wire type. */
const json = (r: Record<string, unknown> | undefined) => r as Record<string, JsonField> | undefined;

function mergeJob(job: JobForLease, o: PlainOverrides, secret: SecretOverrides): LeaseBody["job"] {
  const hostKeys = new Map((secret.hosts ?? []).map((h) => [h.id, h.sshPrivateKey]));
  const out: LeaseBody["job"] = {
    name: job.name ?? null,
    executionTtl: job.executionTtl,
    hosts: job.hosts.map((h) => {
      const key = hostKeys.get(h.id);
      return { ...h, hostVars: json(h.hostVars), ...(key ? { sshPrivateKey: key } : {}) };
    }),
    sshPrivateKey: secret.sshPrivateKey ?? job.sshPrivateKey ?? null,
    properties: { ...json(job.properties), ...json(o.properties) },
    playbookTags: o.playbookTags ?? job.playbookTags,
    useDynamicInventory: job.useDynamicInventory,
  };
  if (job.playbook !== undefined) out.playbook = job.playbook;
  if (job.repository !== undefined) out.repository = job.repository;
  return out;
}

/** Every secret value in a lease job, and the decoded PEM of base64 keys, for the agent to redact. */
function secretValues(job: LeaseBody["job"]): string[] {
  const raw = [
    job.sshPrivateKey,
    job.repository ? repositoryUrlSecret(job.repository.url) : null,
    job.repository?.credentials?.password,
    job.repository?.credentials?.sshPrivateKey,
    ...job.hosts.map((h) => h.sshPrivateKey),
  ].filter((v): v is string => typeof v === "string" && v.length > 0);
  const out = new Set<string>(raw);
  for (const v of raw) {
    if (!/^[A-Za-z0-9+/=\s]+$/.test(v)) continue;
    try {
      const decoded = atob(v.replace(/\s+/g, ""));
      if (decoded.includes("PRIVATE KEY")) out.add(decoded);
    } catch {
      // not base64: the raw value is enough
    }
  }
  return [...out];
}

const STAT_KEYS = ["ok", "changed", "failed", "skipped", "unreachable", "rescued", "ignored"] as const;

/**
 * Per-host counters from a playbook_on_stats event: the agent's callback sends `{hosts: {host:
 * counters}, custom?}`; a bare `{host: counters}` and Ansible's `failures`/`dark` names are accepted too.
 */
function statsFrom(data: unknown): Record<string, HostStats> | null {
  if (!data || typeof data !== "object") return null;
  const wrapped = (data as { hosts?: unknown }).hosts;
  const obj = wrapped && typeof wrapped === "object" ? wrapped : data;
  // Entries, not `out[host] = …`: a host may be named `__proto__` and must be kept like any other.
  const out: [string, HostStats][] = [];
  for (const [host, raw] of Object.entries(obj as Record<string, unknown>)) {
    if (!raw || typeof raw !== "object") continue;
    const r = raw as Record<string, unknown>;
    const num = (...keys: string[]) => {
      for (const k of keys) if (typeof r[k] === "number" && Number.isFinite(r[k])) return Math.max(0, Math.trunc(r[k] as number));
      return 0;
    };
    out.push([
      host,
      {
        ok: num("ok"),
        changed: num("changed"),
        failed: num("failed", "failures"),
        skipped: num("skipped"),
        unreachable: num("unreachable", "dark"),
        rescued: num("rescued"),
        ignored: num("ignored"),
      },
    ]);
  }
  return out.length ? Object.fromEntries(out) : null;
}

/**
 * Merges per-host counters (a restart limited to failed hosts keeps the others' counters). Built
 * with a Map and Object.fromEntries, which keep every host name an own property: assigning
 * `hostStats["__proto__"]` would replace the object's prototype instead of storing the host.
 */
function applyStats(s: State, stats: Record<string, HostStats>): void {
  const merged = new Map(Object.entries(s.hostStats));
  for (const [host, st] of Object.entries(stats)) merged.set(host, Object.fromEntries(STAT_KEYS.map((k) => [k, st[k] ?? 0])) as HostStats);
  s.hostStats = Object.fromEntries(merged);
  s.failedHosts = Object.entries(s.hostStats)
    .filter(([, st]) => st.failed > 0 || st.unreachable > 0)
    .map(([h]) => h);
}
