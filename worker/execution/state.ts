/**
 * What the Execution object holds: one JSON document in its `state` table (the table and the
 * document's fields are stored data: add fields, never rename them), and the views made of it.
 */
import type { IndexWrite } from "../db/executions";
import type { CallbackTarget, InitInput, PlainOverrides } from "../domain/contracts";
import { waitingText, type WaitingReason } from "../domain/waiting";
import type { ExecutionStatus, ExecutionView, HostStats, RepositoryLog } from "../schemas/execution";
import { DEFAULT_PENDING_TIMEOUT_MINUTES } from "../schemas/settings";
import { upgradeOutbox, type OutboxEntry } from "./outbox";

export type Trigger = "api" | "schedule" | "restart";

export interface State {
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
  /** The schedule's slot it fired for (null unless a schedule started it). */
  scheduledTime: number | null;
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
  /** The holder's last call in this lease (null until it acknowledges the lease). */
  lastSeenAt?: number | null;
  /** Set to `lastSeenAt` once the holder has not called for UNREACHABLE_AFTER_MS; null while it calls. */
  unreachableSince?: number | null;
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
  /** Deliveries owed to other objects, in order (outbox.ts). */
  outbox: OutboxEntry[];
  retryAt: number | null;
  retries: number;
  overrides: PlainOverrides;
  /** The encrypted SecretOverrides of this attempt, if any. */
  secrets: string | null;
  /** A restart runs only on these hosts (the ones that failed). */
  limit: string[] | null;
  nextSeq: number;
  /** The job's callbacks at the start (webhooks.ts). */
  callbacks: CallbackTarget[];
  /** The last delivery sequence given per callback URL. */
  webhookSeq: Record<string, number>;
  /** Why it waits while PENDING, as its dispatcher last told it (absent in states stored before). */
  waiting?: WaitingReason | null;
  /** How long a PENDING spell may last before it ends INIT_FAILURE (no_agent): the account's setting. */
  pendingTimeoutMs?: number;
  /** When the current PENDING spell ends so (set on entering PENDING). */
  pendingDeadline?: number | null;
}

export const STATE_TABLE = "CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);";

export function loadState(sql: SqlStorage): State | null {
  const row = sql.exec<{ json: string }>("SELECT json FROM state WHERE id = 1").toArray()[0];
  if (!row) return null;
  const s = JSON.parse(row.json) as State;
  s.outbox = upgradeOutbox(s.outbox);
  // Fields added since: a state stored before them reads as an execution without them.
  s.scheduledTime ??= null;
  s.callbacks ??= [];
  s.webhookSeq ??= {};
  return s;
}

export function saveState(sql: SqlStorage, s: State): void {
  sql.exec("INSERT OR REPLACE INTO state (id, json) VALUES (1, ?)", JSON.stringify(s));
}

/** A new execution, PENDING from `now` (the caller enters PENDING and records the first event). */
export function newState(input: InitInput, overrides: PlainOverrides, secrets: string | null, now: number): State {
  return {
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
    scheduledTime: input.scheduledTime ?? null,
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
    lastSeenAt: null,
    unreachableSince: null,
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
    overrides,
    secrets,
    limit: null,
    nextSeq: 1,
    callbacks: (input.callbacks ?? []).map((c) => ({ url: c.url, level: c.level })),
    webhookSeq: {},
    waiting: null,
    pendingTimeoutMs: (input.pendingTimeoutMinutes ?? DEFAULT_PENDING_TIMEOUT_MINUTES) * 60_000,
    pendingDeadline: null,
  };
}

/** The execution as the API answers it. */
export function viewOf(s: State): ExecutionView {
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
    agent_unreachable_since: s.unreachableSince ?? null,
    trigger: s.trigger,
    schedule_id: s.scheduleId,
    scheduled_time: s.scheduledTime,
    reason: s.reason,
    // Only while PENDING; "last seen N minutes ago" is counted from now.
    waiting_reason: s.status === "PENDING" ? waitingText(s.waiting ?? { code: "queued" }, Date.now()) : null,
    attempt: s.attempt,
    created_time: s.createdTime,
    links: { self, job, events: `${self}/events`, log: `${self}/log` },
  };
}

/** The D1 index row of the current version. */
export function indexRowOf(s: State): IndexWrite {
  return {
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
    version: s.version,
    eventCount: s.nextSeq - 1,
    view: viewOf(s),
  };
}
