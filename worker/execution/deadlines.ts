/**
 * The clock's part in the state machine: the deadlines an execution can pass and the one alarm
 * slot set to the earliest of them. Pure: the Execution object applies what is due.
 */
import { UNREACHABLE_AFTER_MS } from "../domain/contracts";
import { LEASED, TERMINAL, type Cause } from "./machine";
import type { State } from "./state";

/** After the TTL, a graceful stop gets this long before it escalates (the agent's own backstop is 30 s too). */
export const TTL_GRACE_MS = 30_000;
/**
 * A kill the agent does not confirm within this ends KILLED anyway. Not the lost-agent window: an
 * agent that still calls but does not confirm is not partitioned, and a kill must not wait minutes.
 */
export const KILL_CONFIRM_MS = 30_000;

type Clocked = Pick<
  State,
  "status" | "leaseExpiresAt" | "killDeadline" | "stopEscalateAt" | "ttlFired" | "ttlAt" | "retryAt" | "lastSeenAt" | "unreachableSince" | "pendingDeadline"
>;

/** The pending timeout counts only if it comes no later than the TTL (else the TTL ends it first). */
const pendingDue = (s: Clocked) => (s.status === "PENDING" && s.pendingDeadline != null && s.pendingDeadline <= s.ttlAt ? s.pendingDeadline : null);

/**
 * Each deadline and whether it has passed, in the order they are applied: each is checked after
 * the one before has been applied (a lost lease ends a kill's wait, and so on).
 */
export const DEADLINES: readonly { cause: Cause; due: (s: Clocked, now: number) => boolean }[] = [
  { cause: "lease_lost", due: (s, now) => LEASED.has(s.status) && s.leaseExpiresAt !== null && s.leaseExpiresAt <= now },
  { cause: "kill_timeout", due: (s, now) => s.status === "KILLING" && s.killDeadline !== null && s.killDeadline <= now },
  { cause: "escalate", due: (s, now) => s.status === "STOPPING" && s.stopEscalateAt !== null && s.stopEscalateAt <= now },
  { cause: "pending_timeout", due: (s, now) => (pendingDue(s) ?? Infinity) <= now },
  { cause: "ttl", due: (s, now) => !TERMINAL.has(s.status) && !s.ttlFired && s.ttlAt <= now },
];

/**
 * When the holder of the lease counts as unreachable (no call for UNREACHABLE_AFTER_MS): not a
 * transition, only what the execution answers (`agent_unreachable_since`) until the lease expires.
 * Null once it is marked, or before the lease is acknowledged (an unacknowledged one just expires).
 */
export function unreachableAt(s: Clocked): number | null {
  if (!LEASED.has(s.status) || s.lastSeenAt == null || s.unreachableSince != null) return null;
  return s.lastSeenAt + UNREACHABLE_AFTER_MS;
}

/** When the alarm should next fire: the earliest deadline still ahead (or an outbox retry); null for none. */
export function nextAlarm(s: Clocked): number | null {
  const times: number[] = [];
  const unreachable = unreachableAt(s);
  if (unreachable !== null) times.push(unreachable);
  if (LEASED.has(s.status) && s.leaseExpiresAt !== null) times.push(s.leaseExpiresAt);
  if (s.status === "KILLING" && s.killDeadline !== null) times.push(s.killDeadline);
  if (s.status === "STOPPING" && s.stopEscalateAt !== null) times.push(s.stopEscalateAt);
  if (!TERMINAL.has(s.status) && !s.ttlFired) times.push(s.ttlAt);
  if (s.retryAt !== null) times.push(s.retryAt);
  const pending = pendingDue(s);
  if (pending !== null) times.push(pending);
  return times.length ? Math.min(...times) : null;
}
