// The lease's countdown on the agent's side: the server gives an execution up (agent_lost) when its
// lease expires without a call from us; by then the run must be gone too, so that both sides agree
// and nothing runs on unreported. Each answer moves `leaseExpiresAt` on; this loop only sleeps
// until the latest one (in this machine's clock) and checks again.
import { sleep } from "../retry.ts";

export interface LeaseWatchOptions {
  /** When the lease expires in this machine's clock (the latest `leaseExpiresAt` converted). */
  expiresAt(): number;
  /** The lease has expired without the API being reached: the run must end. */
  onExpired(): void;
  signal: AbortSignal;
  now?: () => number;
}

export async function leaseWatch(opts: LeaseWatchOptions): Promise<void> {
  const now = opts.now ?? Date.now;
  while (!opts.signal.aborted) {
    const left = opts.expiresAt() - now();
    if (left <= 0) {
      opts.onExpired();
      return;
    }
    // At most a minute at a time: a clock that jumps is noticed within one.
    await sleep(Math.min(left, 60_000), opts.signal);
  }
}
