import type { JobRow } from "../db/jobs";

/** How long after the start the row it read stands in for reading the job again. */
export const HELD_JOB_MS = 2_000;

/**
 * The job row the start read (secrets still encrypted), held in memory only (never stored: an
 * evicted object simply reads the job again) for the lease that follows the start at once, which
 * would otherwise read the same row a few milliseconds later. A lease granted later reads the job
 * as it is then: the row is used once, by the first attempt, within HELD_JOB_MS of the start,
 * and dropped as soon as the dispatcher says the execution waits for something other than its
 * turn (no agent, agents offline, the account's limit).
 */
export class HeldJob {
  /** Public so that a test can make it look old (test/worker/start-round-trips.test.ts). */
  held: { row: JobRow; at: number } | null = null;

  hold(row: JobRow | undefined, now: number): void {
    this.held = row ? { row, at: now } : null;
  }

  /** The row for this lease, or null (read the job). Either way it is gone afterwards. */
  take(attempt: number, now: number): JobRow | null {
    const h = this.held;
    this.held = null;
    return h && attempt === 1 && now - h.at < HELD_JOB_MS ? h.row : null;
  }

  drop(): void {
    this.held = null;
  }
}
