/** How hard the login is throttled (the LoginThrottle object enforces it per username). */
import { backoffMs } from "../lib/backoff";

/** Failed logins allowed for one username within WINDOW_MS before it is locked. */
export const MAX_FAILURES = 5;
export const WINDOW_MS = 60_000;
/** The first lock; each lock that follows soon after another doubles it, up to MAX_LOCK_MS. */
export const FIRST_LOCK_MS = 60_000;
export const MAX_LOCK_MS = 15 * 60_000;
/** A lock that starts this long after the previous one ended starts again from FIRST_LOCK_MS. */
export const STRIKES_FORGOTTEN_MS = MAX_LOCK_MS;
/** The object forgets everything this long after its last attempt (so unknown names leave nothing behind). */
export const FORGET_AFTER_MS = 60 * 60_000;

/** The length of a lock after `strikes` earlier ones. */
export const lockMs = (strikes: number) => backoffMs(strikes + 1, FIRST_LOCK_MS, MAX_LOCK_MS);

export type Gate = { ok: true } | { ok: false; retryAfterMs: number };
