// The lease loop: long-poll for work while there is a free slot; back off (with jitter) on errors.
import { ApiError } from "../api-client.ts";
import { silentLogger, type Logger } from "../log.ts";
import { Backoff, sleep } from "../retry.ts";
import type { Lease } from "../types.ts";

export interface LeaseLoopOptions {
  lease(body: { running: string[]; capacity: number; waitMs: number }, signal: AbortSignal): Promise<Lease | null>;
  /** Ids of the executions held now (the server learns what we still run). */
  running(): string[];
  /** Free slots now. */
  capacity(): number;
  /** Resolves when a slot frees up (or the signal aborts). */
  waitForSlot(signal: AbortSignal): Promise<void>;
  onLease(lease: Lease): void;
  /** A non-retryable answer (401 revoked credential, other 4xx): the loop ends. */
  onFatal(err: ApiError): void;
  pollWaitMs: number;
  signal: AbortSignal;
  backoff?: Backoff;
  log?: Logger;
}

export function isLease(v: unknown): v is Lease {
  const l = v as Lease | null;
  return !!l && typeof l.executionId === "string" && typeof l.attempt === "number" && typeof l.leaseId === "string" && !!l.job && typeof l.job === "object";
}

export async function leaseLoop(opts: LeaseLoopOptions): Promise<void> {
  const log = opts.log ?? silentLogger;
  const backoff = opts.backoff ?? new Backoff();
  const { signal } = opts;
  while (!signal.aborted) {
    const free = opts.capacity();
    if (free <= 0) {
      await opts.waitForSlot(signal);
      continue;
    }
    try {
      const lease = await opts.lease({ running: opts.running(), capacity: free, waitMs: opts.pollWaitMs }, signal);
      if (backoff.failures) log.info("connected to the API again");
      backoff.reset();
      if (!lease) continue;
      if (!isLease(lease)) {
        log.error("the API answered a lease without executionId/attempt/leaseId/job; ignoring it", { lease: JSON.stringify(lease).slice(0, 200) });
        continue;
      }
      opts.onLease(lease);
    } catch (err) {
      if (signal.aborted) break;
      const e = ApiError.from(err);
      if (!e.retryable) {
        opts.onFatal(e);
        return;
      }
      const delay = e.retryAfterMs ?? backoff.next();
      log.warn("lease request failed; retrying", { error: e.message, retryInMs: delay, failures: backoff.failures });
      await sleep(delay, signal);
    }
  }
}
