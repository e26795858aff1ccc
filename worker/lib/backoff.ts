/**
 * The one backoff of the Worker: `baseMs` after the first failure, doubling with each one after,
 * never more than `maxMs`. Used by the Execution object's outbox, the Dispatcher's failed grants
 * and the login throttle's locks.
 */
export function backoffMs(failures: number, baseMs: number, maxMs: number): number {
  // The exponent is capped only so that it never overflows; the cap on the delay is maxMs.
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(0, failures - 1), 30));
}
