import type { JobRow } from "../db/jobs";
import { ProblemError, type Outcome } from "../lib/problem";
import { MAX_POLL_WAIT_MS } from "../schemas/agent";
import type { WaitingReason } from "./waiting";
import type {
  AgentAnswer as AgentAnswerBody,
  EventUpload,
  ExecutionStatus,
  ExecutionView,
  LeaseBody,
  LeaseRef,
  StatusEvent,
  StatusReport,
} from "../schemas/execution";

/**
 * Types and constants shared by the Jobs domain, the Execution object, the Dispatcher object and
 * the agent routes: the one module both sides of a Durable Object call import (nothing but
 * worker/index.ts imports a `.do.ts` file; see docs/DESIGN.md). How they call each other:
 * - an execution is created by `startExecution` (domain/executions.ts); its `Execution` object
 *   enqueues it on the dispatcher that `routeExecution` (domain/dispatch.ts) picks;
 * - an agent's long poll (`pollForLease`, domain/agents.ts) waits on its `Dispatcher`, which
 *   claims an account slot and calls `Execution.grantLease`; the lease's job comes from
 *   `loadJobForLease` / `jobForLease` (domain/jobs.ts), the only place secrets are decrypted for
 *   an agent (of the row the start read, when the lease follows it at once: `InitInput.jobRow`);
 * - agent calls and user actions reach the object through `executionClient()`
 *   (domain/execution-client.ts): its methods answer an `Outcome` rather than throw, and the
 *   client throws a refusal again as the ProblemError it was.
 */

type LeaseJob = LeaseBody["job"];
/**
 * The job definition with secrets decrypted: what a lease carries (the lease schema's `job`, with
 * JSON values as the store holds them), plus the job's `location` (routing, never sent).
 */
export type JobForLease = Omit<LeaseJob, "hosts" | "properties"> & {
  hosts: (Omit<LeaseJob["hosts"][number], "hostVars"> & { hostVars?: Record<string, unknown> })[];
  properties: Record<string, unknown>;
  location?: string | null;
};

/** Per-execution overrides given to start/restart; the secrets in it are never stored beyond the execution. */
export interface StartOverrides {
  hosts?: { id: string; sshPrivateKey?: string | null }[];
  sshPrivateKey?: string | null;
  properties?: Record<string, unknown>;
  playbookTags?: string[];
  check?: boolean;
  diff?: boolean;
}
/** Per-execution overrides without secrets (kept in plain text). */
export type PlainOverrides = Pick<StartOverrides, "properties" | "playbookTags" | "check" | "diff">;
/** The secret part of the overrides (stored encrypted, dropped when the execution ends); what a restart may give. */
export type SecretOverrides = Pick<StartOverrides, "hosts" | "sshPrivateKey">;

export interface DispatchItem {
  executionId: string;
  accountAlias: string;
  jobId: string;
  enqueuedAt: number;
}

export type AgentCommand = AgentAnswerBody["command"];
export type AgentAnswer = AgentAnswerBody;

/** The refusal of a call from an agent that does not hold the lease it names (docs/agent-protocol.md). */
export function abandon(detail: string): ProblemError {
  return new ProblemError({ status: 409, title: "Conflict", detail, extensions: { command: "abandon" } });
}

/** Key of the dispatcher that serves an execution or an agent: "shared", or "acct:{alias}:{location|''}". */
export function dispatcherKey(accountAlias: string | null, location: string | null | undefined): string {
  return accountAlias === null ? "shared" : `acct:${accountAlias}:${location ?? ""}`;
}

/** The account and location a dispatcher key names (`account` null: the shared pool). */
export function parseDispatcherKey(key: string): { account: string | null; location: string | null } {
  const m = /^acct:([^:]*):(.*)$/s.exec(key);
  return m ? { account: m[1]!, location: m[2] || null } : { account: null, location: null };
}

// The protocol's timing: one source for the register answer, the lease body and the object's alarms.
export const HEARTBEAT_INTERVAL_MS = 5_000;
/**
 * The lost-agent window (LOST_AGENT_WINDOW_SECONDS): how long an acknowledged lease outlives the
 * agent's last call. A network partition shorter than this loses nothing: the run goes on, the
 * agent keeps its events and uploads them when the API is back. Only when it ends is the execution
 * given up on (FAILURE agent_lost, or PENDING again if its playbook had not started), and the agent,
 * which counts down the same `leaseExpiresAt`, kills the run itself.
 */
export const DEFAULT_LOST_AGENT_WINDOW_S = 120;
/** Shorter than this, an agent's ordinary retries (a heartbeat every 5 s) would lose leases. */
const MIN_LOST_AGENT_WINDOW_S = 15;
const MAX_LOST_AGENT_WINDOW_S = 3600;

/** LOST_AGENT_WINDOW_SECONDS in ms: whole seconds, 15 to 3600; anything else is the default (120 s). */
export function lostAgentWindowMs(env: Pick<Env, "LOST_AGENT_WINDOW_SECONDS">): number {
  const raw = String(env.LOST_AGENT_WINDOW_SECONDS ?? "").trim();
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  return (n >= MIN_LOST_AGENT_WINDOW_S && n <= MAX_LOST_AGENT_WINDOW_S ? n : DEFAULT_LOST_AGENT_WINDOW_S) * 1000;
}
/**
 * An agent with a lease that has not called for longer than this is answered as unreachable
 * (`agent_unreachable_since`): two heartbeats missed, more than jitter or one slow answer explains.
 */
export const UNREACHABLE_AFTER_MS = 2 * HEARTBEAT_INTERVAL_MS;
/**
 * A lease not yet acknowledged by any agent call is held this long only: a long poll whose agent
 * had already gone (a disconnect the platform did not report) gives the work back within seconds.
 * Agents acknowledge at once with their first heartbeat.
 */
export const LEASE_ACK_MS = 10_000;
/**
 * An agent is online when it was seen this recently: `GET /minions` shows it, and routing and the
 * dispatcher's waiting reasons count only such agents. Its `lastSeen` in D1 is written by the
 * agent's `Agent` object at most every SEEN_WRITE_MS, so an idle agent, calling once per long poll
 * (MAX_POLL_WAIT_MS, 25 s), has its `lastSeen` rewritten at the first poll at least SEEN_WRITE_MS
 * after the last write: at most SEEN_WRITE_MS + 25 s = 55 s apart. The window must exceed that, with
 * room for a poll's round trip (SEEN_WRITE_SLACK_MS).
 */
export const ONLINE_WINDOW_MS = 60_000;
export const isOnline = (lastSeen: number | null, now: number) => lastSeen !== null && now - lastSeen <= ONLINE_WINDOW_MS;
/** Room left in the online window for the round trips between an idle agent's polls. */
export const SEEN_WRITE_SLACK_MS = 5_000;
/**
 * The `Agent` object writes `lastSeen` to D1 at most this often (30 s): the longest throttle that
 * keeps a polling agent online. An idle agent's polls (25 s apart) then write every other poll,
 * 1.2 writes a minute; a busy agent (heartbeats every 5 s) 2 a minute.
 */
export const SEEN_WRITE_MS = ONLINE_WINDOW_MS - MAX_POLL_WAIT_MS - SEEN_WRITE_SLACK_MS;
/** Is a `lastSeen` write due, the last one having been at `written` (0: none this object knows of)? */
export const seenWriteDue = (written: number, now: number) => now - written >= SEEN_WRITE_MS;
// The lease and agent body schemas live with the execution entity.
export type { LeaseBody, StatusReport, EventUpload } from "../schemas/execution";

/** A batch of events in order, as JSON text (see `uploadEventRun`). */
export interface EventRun {
  json: string;
  first: number;
  count: number;
}

// ---- the Execution object's RPC surface ------------------------------------------------------

export interface InitInput {
  executionId: string;
  accountAlias: string;
  jobId: string;
  trigger: "api" | "schedule";
  scheduleId?: string | null;
  /** The schedule's slot this execution fires for (how late it started is `created_time` minus this). */
  scheduledTime?: number | null;
  /** The job's callbacks when it started: its deliveries go to these, whatever the job says later. */
  callbacks?: CallbackTarget[];
  executionTtl: number;
  dispatcherKey: string;
  overrides?: StartOverrides;
  /** The account's pending timeout (settings); absent: the default. */
  pendingTimeoutMinutes?: number;
  /**
   * The job row as the start read it (secrets still encrypted). The object keeps it in memory only,
   * for a lease granted straight after (saves reading the same row again); never stored.
   */
  jobRow?: JobRow;
}

export type CallbackLevel = "DEBUG" | "ERROR" | "RESULT";
export interface CallbackTarget {
  url: string;
  level: CallbackLevel;
}

/**
 * A webhook delivery as it travels through the CALLBACKS queue: a reference, never the payload
 * (which the consumer loads), so no message comes near the queue's size limit.
 */
export interface CallbackMessage {
  deliveryId: string;
  accountAlias: string;
  executionId: string;
  /** The event's sequence in the execution. */
  eventSeq: number;
  /** Which of the execution's callbacks. */
  callbackIndex: number;
}

/** What a delivery sends, as the Execution object answers it: the event, and for a final status the execution then. */
export interface WebhookContent {
  event: StatusEventWire;
  execution: ExecutionView | null;
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

export interface EventPage {
  totalSize: number;
  results: StatusEventWire[];
}

export interface LogChunk {
  text: string;
  /** The sequence of the last event included (resume after it). */
  through: number;
  /** The execution has ended and nothing after `through` remains. */
  ended: boolean;
  status: ExecutionStatus;
}

/**
 * What the `Execution` object answers over RPC (it `implements` this; execution-client.ts calls
 * it). Methods that may refuse (404 scope, 409 state, 409 abandon) answer an Outcome.
 */
export interface ExecutionRpc {
  /** Creates the execution (PENDING) and queues it. Idempotent for the same id. */
  init(input: InitInput): Promise<ExecutionView>;
  view(scope?: Scope): Promise<Outcome<ExecutionView>>;
  stop(scope: Scope, expiryDuration?: number): Promise<Outcome<ExecutionView>>;
  kill(scope: Scope): Promise<Outcome<ExecutionView>>;
  /** `dispatcherKey`: where the job routes now (agents may have appeared since the first run). */
  restart(scope: Scope, overrides?: SecretOverrides, dispatcherKey?: string, pendingTimeoutMinutes?: number): Promise<Outcome<ExecutionView>>;
  /** Status events in sequence order: page `page` of `size` after sequence `after` (keyset). */
  events(scope: Scope | undefined, after: number, page: number, size: number): Promise<Outcome<EventPage>>;
  eventCount(): Promise<number>;
  /**
   * The log after sequence `after`, at most about `maxBytes` (at least one event). With `waitMs`,
   * waits that long for something new when nothing is there yet and the execution is live.
   */
  logChunk(scope: Scope | undefined, after: number, maxBytes?: number, waitMs?: number): Promise<Outcome<LogChunk>>;
  /** PENDING → INITIALIZING for `agentId`; null when it is no longer PENDING (or cannot run). */
  grantLease(agentId: string): Promise<LeaseBody | null>;
  heartbeat(agentId: string, ref: LeaseRef): Promise<Outcome<AgentAnswer>>;
  /** A status change and/or the repository log; with `events`, the run's last events are stored first (the answer's `acceptedThrough`). */
  report(agentId: string, body: StatusReport): Promise<Outcome<AgentAnswer & { status: string; acceptedThrough?: number }>>;
  uploadEvents(agentId: string, body: EventUpload): Promise<Outcome<AgentAnswer & { acceptedThrough: number }>>;
  /**
   * `uploadEvents` for a batch whose seqs run `first`, `first + 1`, … (`count` of them) and that
   * holds no `playbook_on_stats`, as the JSON text of its events: when it follows the last stored
   * event and no callback is owed events, it is stored in one statement, without a copy of the
   * array across RPC; otherwise it is parsed and stored as `uploadEvents` stores it.
   */
  uploadEventRun(agentId: string, ref: LeaseRef, run: EventRun): Promise<Outcome<AgentAnswer & { acceptedThrough: number }>>;
  release(agentId: string, ref: LeaseRef): Promise<Outcome<AgentAnswer>>;
  /** The agent's credential was revoked: its lease is lost at once. */
  agentRevoked(agentId: string): Promise<void>;
  /** The dispatcher's word on why the PENDING execution waits; it calls only when the reason changed. */
  waiting(reason: WaitingReason): Promise<void>;
  /** The cron sweep's poke: run what a missed alarm would have, and re-arm. */
  sweep(): Promise<ExecutionStatus | null>;
  /** What the delivery of event `eventSeq` sends (null when there is no such event). */
  webhookContent(eventSeq: number): Promise<WebhookContent | null>;
}
