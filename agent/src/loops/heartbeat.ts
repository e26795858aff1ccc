// Heartbeats of one execution, on their own timer (a busy upload never starves them).
import { ApiError, type HeartbeatAnswer } from "../api-client.ts";
import { silentLogger, type Logger } from "../log.ts";
import { Backoff, jitter, sleep } from "../retry.ts";
import type { AgentCommand } from "../types.ts";

export interface HeartbeatOptions {
  send(signal: AbortSignal): Promise<HeartbeatAnswer>;
  intervalMs: number;
  signal: AbortSignal;
  onCommand?(cmd: Exclude<AgentCommand, null>): void;
  onAnswer?(a: HeartbeatAnswer): void;
  /** 401 or 409 abandon: the loop ends. */
  onFatal?(err: ApiError): void;
  log?: Logger;
}

/**
 * Every `intervalMs` (±10 %), a heartbeat. A failed one is retried sooner (backoff from 0.5 s, never
 * longer than the interval) so that a short outage does not cost the lease.
 */
export async function heartbeatLoop(opts: HeartbeatOptions): Promise<void> {
  const log = opts.log ?? silentLogger;
  const backoff = new Backoff({ initialMs: 500, maxMs: opts.intervalMs });
  // The first beat goes at once: it acknowledges the lease, which the server holds unacknowledged
  // only briefly (work handed to a poll whose agent had already gone is re-queued within seconds).
  let delay = 0;
  while (!opts.signal.aborted) {
    await sleep(delay, opts.signal);
    if (opts.signal.aborted) break;
    try {
      const a = await opts.send(opts.signal);
      backoff.reset();
      opts.onAnswer?.(a);
      if (a.command) opts.onCommand?.(a.command);
      delay = jitter(opts.intervalMs);
    } catch (err) {
      if (opts.signal.aborted) break;
      const e = ApiError.from(err);
      if (e.unauthorized || e.abandon) {
        opts.onFatal?.(e);
        return;
      }
      // Never wait longer than the interval, whatever Retry-After says: the lease depends on it.
      delay = Math.min(e.retryAfterMs ?? backoff.next(), opts.intervalMs);
      log.warn("heartbeat failed", { error: e.message, retryInMs: delay, failures: backoff.failures });
    }
  }
}
