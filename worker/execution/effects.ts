/**
 * What a transition does to the execution's state besides its status: the effects of each cause
 * and of entering PENDING or an end. Pure mutations of the State; the Execution object's `apply`
 * calls them after the transition table allowed the change.
 */
import { LEASE_ACK_MS } from "../domain/contracts";
import type { HostStats, StatusReport } from "../schemas/execution";
import { TTL_GRACE_MS } from "./deadlines";
import { mergeHostStats } from "./host-stats";
import { TERMINAL, type Cause } from "./machine";
import { pending, toDispatcher } from "./outbox";
import type { State } from "./state";

export interface ApplyOptions {
  agentId?: string;
  expiryMs?: number | null;
  report?: StatusReport;
  reason?: string;
  secrets?: string | null;
  dispatcherKey?: string;
  /** The account's pending timeout, for a restart. */
  pendingTimeoutMs?: number;
  /** Said in the status event (a deadline's explanation). */
  detail?: string;
}

/** The effects of `cause` (leading to `to`), before the status changes. */
export function causeEffects(cause: Cause, to: State["status"], s: State, opts: ApplyOptions, now: number): void {
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
      s.leaseExpiresAt = now + LEASE_ACK_MS; // the agent's first call renews it to the lost-agent window
      s.lastSeenAt = null;
      s.unreachableSince = null;
      s.pendingDeadline = null;
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
      if (opts.pendingTimeoutMs) s.pendingTimeoutMs = opts.pendingTimeoutMs;
      // Undelivered calls still name the old dispatcher: switch only once they are through.
      if (opts.dispatcherKey && !pending(s, "dispatcher")) s.dispatcherKey = opts.dispatcherKey;
      break;
  }
  const report = opts.report;
  if (report && TERMINAL.has(to)) {
    if (report.hostStats) applyStats(s, report.hostStats);
    if (report.failedHosts) s.failedHosts = [...new Set(report.failedHosts)];
  }
}

/** Back in the queue: no lease, no agent, the dispatcher told. */
export function enterPending(s: State, now: number): void {
  endLease(s, now);
  s.agentId = null;
  s.started = false;
  s.queued = true;
  // Each spell in PENDING gets the whole pending timeout, and a reason of its own.
  s.waiting = { code: "queued" };
  s.pendingDeadline = s.pendingTimeoutMs ? now + s.pendingTimeoutMs : null;
  toDispatcher(s, "enqueue", now);
}

/** Ended: the timer closes, the queue and the lease let go, per-execution secrets dropped. */
export function enterTerminal(s: State, now: number): void {
  const timer = s.timers[s.timers.length - 1];
  if (timer && timer.end === null) timer.end = now;
  if (s.queued) toDispatcher(s, "remove", now);
  s.queued = false;
  s.endedLeaseId = s.leaseId;
  endLease(s, now);
  s.secrets = null; // per-execution secrets never outlive it
}

/** No lease any more: its dispatcher slot is given back, and the deadlines of a leased run go. */
function endLease(s: State, now: number): void {
  if (s.slotHeld) toDispatcher(s, "finished", now);
  s.slotHeld = false;
  s.leaseId = null;
  s.leaseExpiresAt = null;
  s.lastSeenAt = null;
  s.unreachableSince = null;
  s.stopEscalateAt = null;
  s.killDeadline = null;
}

export function applyStats(s: State, stats: Record<string, HostStats>): void {
  Object.assign(s, mergeHostStats(s.hostStats, stats));
}
