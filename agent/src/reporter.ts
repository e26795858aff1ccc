// Status reports of one execution, delivered one at a time and in order, retried while retryable:
// through an outage as long as the lease lasts (the session stops the reporter when it is lost).
import { ApiError, type StatusAnswer } from "./api-client.ts";
import { silentLogger, type Logger } from "./log.ts";
import { Backoff, sleep } from "./retry.ts";
import type { AgentCommand, StatusReport } from "./types.ts";

export interface ReporterOptions {
  send(report: StatusReport, signal: AbortSignal): Promise<StatusAnswer>;
  onCommand?(cmd: Exclude<AgentCommand, null>): void;
  onFatal?(err: ApiError): void;
  backoff?: () => Backoff;
  log?: Logger;
  /** Aborting it stops retrying, like stop(). */
  signal?: AbortSignal;
}

export class Reporter {
  private readonly opts: ReporterOptions;
  private readonly log: Logger;
  private readonly stopper = new AbortController();
  private chain: Promise<void> = Promise.resolve();
  private retryWake: (() => void) | null = null;

  constructor(opts: ReporterOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    opts.signal?.addEventListener("abort", () => this.stop(), { once: true });
  }

  /** Queues a report behind the earlier ones; resolves once it is delivered, refused or abandoned. */
  report(r: StatusReport): Promise<void> {
    const p = this.chain.then(() => this.deliver(r));
    this.chain = p;
    return p;
  }

  stop(): void {
    this.stopper.abort();
  }

  /** The API answers again (a heartbeat got through): a failed report is retried now, not after its backoff. */
  retryNow(): void {
    this.retryWake?.();
  }

  private async deliver(r: StatusReport): Promise<void> {
    const signal = this.stopper.signal;
    const backoff = this.opts.backoff?.() ?? new Backoff();
    while (!signal.aborted) {
      try {
        const a = await this.opts.send(r, signal);
        if (a.command) this.opts.onCommand?.(a.command);
        return;
      } catch (err) {
        if (signal.aborted) return;
        const e = ApiError.from(err);
        if (e.unauthorized || e.abandon) {
          this.opts.onFatal?.(e);
          return;
        }
        if (e.retryable) {
          const delay = e.retryAfterMs ?? backoff.next();
          this.log.warn("status report failed; retrying", { status: r.status, error: e.message, retryInMs: delay });
          const wake = new AbortController();
          this.retryWake = () => wake.abort();
          await sleep(delay, AbortSignal.any([signal, wake.signal]));
          this.retryWake = null;
          continue;
        }
        // 409: the state machine forbids it (a stop raced our report); other 4xx: our mistake. Not retried.
        this.log.warn("the API refused a status report", { status: r.status, error: e.message, httpStatus: e.status });
        const cmd = e.problem?.command;
        if (cmd === "stop" || cmd === "kill") this.opts.onCommand?.(cmd);
        return;
      }
    }
  }
}
