// One leased execution, wired to the API: its run (run.ts), its uploader, status reporter and
// heartbeat loop, with commands from any answer routed to the run.
import { performance } from "node:perf_hooks";
import { ApiError, type ApiClient, type EventsAnswer, type HeartbeatAnswer, type StatusAnswer } from "./api-client.ts";
import { Run, type RunOptions, type RunResult } from "./run.ts";
import { heartbeatLoop } from "./loops/heartbeat.ts";
import { silentLogger, type Logger } from "./log.ts";
import { Reporter } from "./reporter.ts";
import { Backoff, sleep } from "./retry.ts";
import type { AgentCommand, Lease, LeaseRef, StatusReport, WireEvent } from "./types.ts";
import { Uploader } from "./uploader.ts";

/**
 * The protocol calls of one execution, each naming its lease. ApiClient provides them; tests can
 * record them in-process.
 */
export interface ExecutionTransport {
  events(body: LeaseRef & { events: WireEvent[] }, signal: AbortSignal): Promise<EventsAnswer>;
  status(body: StatusReport & LeaseRef, signal: AbortSignal): Promise<StatusAnswer>;
  heartbeat(body: LeaseRef, signal: AbortSignal): Promise<HeartbeatAnswer>;
  release(body: LeaseRef, signal: AbortSignal): Promise<void>;
}

export function apiTransport(client: ApiClient, executionId: string): ExecutionTransport {
  return {
    events: (b, s) => client.events(executionId, b, s),
    status: (b, s) => client.status(executionId, b, s),
    heartbeat: (b, s) => client.heartbeat(executionId, b, s),
    release: (b, s) => client.release(executionId, b, s),
  };
}

export interface SessionOptions {
  transport: ExecutionTransport;
  executor: RunOptions;
  heartbeatIntervalMs?: number;
  uploadIntervalMs?: number;
  /** 401 from any call: the agent's credential is gone. */
  onUnauthorized?(err: ApiError): void;
  log?: Logger;
}

export interface SessionResult extends RunResult {
  executionId: string;
  attempt: number;
  released?: boolean;
}

export class Session {
  readonly lease: Lease;
  /** The run of the lease (run.ts). */
  readonly execution: Run;
  private readonly opts: SessionOptions;
  private readonly log: Logger;
  private readonly uploader: Uploader;
  private readonly reporter: Reporter;
  private readonly heartbeatStop = new AbortController();
  /** Sent with every call of this execution. */
  private readonly ref: LeaseRef;

  constructor(lease: Lease, opts: SessionOptions) {
    this.lease = lease;
    this.opts = opts;
    this.log = (opts.log ?? silentLogger).child({ executionId: lease.executionId, attempt: lease.attempt });
    const ref: LeaseRef = { attempt: lease.attempt, leaseId: lease.leaseId };
    this.ref = ref;
    const onCommand = (cmd: Exclude<AgentCommand, null>) => this.execution.command(cmd);
    const onFatal = (err: ApiError) => this.fatal(err);
    this.uploader = new Uploader({
      send: (events, signal) => opts.transport.events({ ...ref, events }, signal),
      onCommand,
      onFatal,
      intervalMs: opts.uploadIntervalMs,
      log: this.log,
    });
    this.reporter = new Reporter({
      send: (r, signal) => opts.transport.status({ ...r, ...ref }, signal),
      onCommand,
      onFatal,
      log: this.log,
    });
    const sink = {
      event: (e: Parameters<Uploader["push"]>[0]) => void this.uploader.push(e),
      report: (r: StatusReport) => this.reporter.report(r),
      flush: () => this.uploader.flush(),
    };
    this.execution = new Run(lease, sink, { receivedAt: performance.now(), ...opts.executor, log: opts.log });
  }

  get executionId(): string {
    return this.lease.executionId;
  }

  /** Events produced and not yet accepted by the API (metrics). */
  get uploadBacklog(): number {
    return this.uploader.pending;
  }

  private fatal(err: ApiError): void {
    if (err.unauthorized) {
      this.execution.abandon();
      this.opts.onUnauthorized?.(err);
    } else {
      this.execution.abandon();
    }
  }

  command(cmd: "stop" | "kill", reason?: string): void {
    this.execution.command(cmd, reason);
  }

  async run(): Promise<SessionResult> {
    const hb = heartbeatLoop({
      send: (signal) => this.opts.transport.heartbeat(this.ref, signal),
      intervalMs: this.lease.heartbeatIntervalMs ?? this.opts.heartbeatIntervalMs ?? 5000,
      signal: this.heartbeatStop.signal,
      onCommand: (cmd) => this.execution.command(cmd),
      onFatal: (err) => this.fatal(err),
      log: this.log,
    });
    let result: RunResult;
    try {
      result = await this.execution.run();
    } finally {
      this.heartbeatStop.abort();
      this.reporter.stop();
      await this.uploader.stop();
      await hb;
    }
    const out: SessionResult = { ...result, executionId: this.lease.executionId, attempt: this.lease.attempt };
    if (result.handedBack) out.released = await this.release();
    return out;
  }

  /** Hands the execution back to the queue (a few quick tries; the lease expiring does the same, later). */
  private async release(): Promise<boolean> {
    const backoff = new Backoff({ initialMs: 250, maxMs: 2000 });
    const signal = AbortSignal.timeout(10_000);
    for (let i = 0; i < 5 && !signal.aborted; i++) {
      try {
        await this.opts.transport.release(this.ref, signal);
        this.log.info("execution handed back");
        return true;
      } catch (err) {
        const e = ApiError.from(err);
        if (!e.retryable) {
          this.log.warn("the API refused the release", { error: e.message });
          return false;
        }
        await sleep(backoff.next(), signal);
      }
    }
    this.log.warn("could not hand the execution back; its lease will expire instead");
    return false;
  }
}
