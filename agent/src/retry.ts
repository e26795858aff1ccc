// Timing helpers shared by the loops: abortable sleep, jitter, exponential backoff.

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** `ms` spread by ±`ratio` so that many agents do not move in step. */
export function jitter(ms: number, ratio = 0.1, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 - ratio + 2 * ratio * random())));
}

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  random?: () => number;
}

/**
 * Exponential backoff with "equal jitter": each delay is half the exponential step plus a random
 * share of the other half, so retries spread out but never collapse to zero.
 * Protocol default: 0.5 s doubling to 30 s.
 */
export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 500;
    this.maxMs = opts.maxMs ?? 30_000;
    this.factor = opts.factor ?? 2;
    this.random = opts.random ?? Math.random;
  }

  get failures(): number {
    return this.attempt;
  }

  next(): number {
    const step = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt++;
    return Math.round(step / 2 + (step / 2) * this.random());
  }

  reset(): void {
    this.attempt = 0;
  }
}
