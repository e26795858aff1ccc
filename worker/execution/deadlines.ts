/**
 * The clock's part in the state machine: the deadlines an execution can pass and the one alarm
 * slot set to the earliest of them. Pure: the Execution object applies what is due.
 */
import { LEASE_TTL_MS } from "../domain/contracts";
import { LEASED, TERMINAL, type Cause } from "./machine";
import type { State } from "./state";

/** After the TTL, a graceful stop gets this long before it escalates (the agent's own backstop is 30 s too). */
export const TTL_GRACE_MS = 30_000;
/** A kill the agent does not confirm within a lease's length ends KILLED anyway. */
export const KILL_CONFIRM_MS = LEASE_TTL_MS;

type Clocked = Pick<State, "status" | "leaseExpiresAt" | "killDeadline" | "stopEscalateAt" | "ttlFired" | "ttlAt" | "retryAt" | "pendingDeadline">;

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

/** When the alarm should next fire: the earliest deadline still ahead (or an outbox retry); null for none. */
export function nextAlarm(s: Clocked): number | null {
  const times: number[] = [];
  if (LEASED.has(s.status) && s.leaseExpiresAt !== null) times.push(s.leaseExpiresAt);
  if (s.status === "KILLING" && s.killDeadline !== null) times.push(s.killDeadline);
  if (s.status === "STOPPING" && s.stopEscalateAt !== null) times.push(s.stopEscalateAt);
  if (!TERMINAL.has(s.status) && !s.ttlFired) times.push(s.ttlAt);
  if (s.retryAt !== null) times.push(s.retryAt);
  const pending = pendingDue(s);
  if (pending !== null) times.push(pending);
  return times.length ? Math.min(...times) : null;
}
