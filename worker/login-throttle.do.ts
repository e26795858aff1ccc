import { DurableObject } from "cloudflare:workers";
import { FORGET_AFTER_MS, lockMs, MAX_FAILURES, STRIKES_FORGOTTEN_MS, WINDOW_MS, type Gate } from "./domain/login-policy";

interface State {
  /** Attempts not yet known to have succeeded, within the window. */
  attempts: number[];
  lockedUntil: number;
  /** Locks so far, for the growing lock length. */
  strikes: number;
}

/**
 * One per username (lower-cased; `idFromName`), whether or not the username exists, so that the
 * throttle says nothing about which usernames do. Each attempt counts as a failure when it is let
 * through and is forgiven by `succeeded`: this object serializes its calls, so concurrent guesses
 * cannot slip past the limit while their password checks are still running.
 *
 * Locks are temporary (60 s, doubling while failures keep coming, at most 15 min), so nobody can
 * lock a real user out for good; a successful login clears everything.
 */
export class LoginThrottle extends DurableObject<Env> {
  private async load(): Promise<State> {
    return (await this.ctx.storage.get<State>("state")) ?? { attempts: [], lockedUntil: 0, strikes: 0 };
  }

  /** Lets an attempt through (and counts it), or answers how long the username stays locked. */
  async attempt(now: number): Promise<Gate> {
    const s = await this.load();
    if (now < s.lockedUntil) return { ok: false, retryAfterMs: s.lockedUntil - now };
    s.attempts = s.attempts.filter((t) => t > now - WINDOW_MS);
    s.attempts.push(now);
    if (s.attempts.length >= MAX_FAILURES) {
      // This attempt still runs; the ones after it wait (unless it succeeds, which clears the lock).
      if (now - s.lockedUntil > STRIKES_FORGOTTEN_MS) s.strikes = 0;
      s.lockedUntil = now + lockMs(s.strikes);
      s.strikes++;
      s.attempts = [];
    }
    await this.ctx.storage.put("state", s);
    await this.ctx.storage.setAlarm(Date.now() + FORGET_AFTER_MS);
    return { ok: true };
  }

  /** The password was right: forget the failures, the lock and the strikes. */
  async succeeded(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }

  async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}
