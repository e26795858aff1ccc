// One leased execution, wired to the API: its run (run.ts), its uploader, status reporter,
// heartbeat loop and lease watch, with commands from any answer routed to the run.
//
// While the API is unreachable the run goes on: heartbeats, uploads (spooled to disk beyond a
// memory cap) and reports are retried, and all of them pick up at once when a heartbeat gets
// through again. If the API stays unreachable until the lease expires (the lost-agent window), the
// server has given the execution up (agent_lost): the lease watch then kills the run and nothing
// more is reported for this lease.
import { performance } from "node:perf_hooks";
import { ApiError, type ApiClient, type EventsAnswer, type HeartbeatAnswer, type StatusAnswer } from "./api-client.ts";
import { Run, type RunOptions, type RunResult } from "./run.ts";
import { heartbeatLoop } from "./loops/heartbeat.ts";
import { leaseWatch } from "./loops/lease-watch.ts";
import { silentLogger, type Logger } from "./log.ts";
import { Reporter } from "./reporter.ts";
import { Backoff, sleep } from "./retry.ts";
import { TERMINAL, type AgentCommand, type Lease, type LeaseRef, type StatusReport, type WireEvent } from "./types.ts";
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

/** A status report with the events it carries stays under the API's 1 MiB body limit. */
const MAX_REPORT_BYTES = 960_000;

export interface SessionOptions {
  transport: ExecutionTransport;
  executor: RunOptions;
  heartbeatIntervalMs?: number;
  uploadIntervalMs?: number;
  /** 401 from any call: the agent's credential is gone. */
  onUnauthorized?(err: ApiError): void;
  /** A directory of the agent's own for the upload backlog beyond the memory cap (uploader.ts); none: memory only. */
  spoolDir?: string;
  /** Upload backlog kept in memory before spooling (tests; default: uploader.ts). */
  memoryEvents?: number;
  log?: Logger;
}

export interface SessionResult extends RunResult {
  executionId: string;
  attempt: number;
  released?: boolean;
  /** The lease expired without the API being reached: the run was killed, nothing more reported. */
  leaseLost?: boolean;
}

export class Session {
  readonly lease: Lease;
  /** The run of the lease (run.ts). */
  readonly execution: Run;
  private readonly opts: SessionOptions;
  private readonly log: Logger;
  private readonly uploader: Uploader;
  private readonly reporter: Reporter;
  /** Stops the heartbeat loop and the lease watch once the run is over. */
  private readonly loopsStop = new AbortController();
  /** Sent with every call of this execution. */
  private readonly ref: LeaseRef;
  /** The latest `leaseExpiresAt` the API answered (its clock). */
  private leaseExpiresAt: number;
  private leaseLost = false;
  /** The uploader holds the last events for the final status report (flush()). */
  private holding = false;

  constructor(lease: Lease, opts: SessionOptions) {
    this.lease = lease;
    this.opts = opts;
    this.log = (opts.log ?? silentLogger).child({ executionId: lease.executionId, attempt: lease.attempt });
    const ref: LeaseRef = { attempt: lease.attempt, leaseId: lease.leaseId };
    this.ref = ref;
    this.leaseExpiresAt = lease.leaseExpiresAt;
    const onCommand = (cmd: Exclude<AgentCommand, null>) => this.execution.command(cmd);
    const onFatal = (err: ApiError) => this.fatal(err);
    this.uploader = new Uploader({
      send: async (events, signal) => {
        const a = await opts.transport.events({ ...ref, events }, signal);
        this.renewed(a.leaseExpiresAt);
        return a;
      },
      onCommand,
      onFatal,
      intervalMs: opts.uploadIntervalMs,
      spool: opts.spoolDir ? { dir: opts.spoolDir, name: `${lease.executionId}.${lease.attempt}.${lease.leaseId}` } : undefined,
      memoryEvents: opts.memoryEvents,
      log: this.log,
    });
    this.reporter = new Reporter({
      send: (r, signal) => this.sendReport(r, signal),
      onCommand,
      onFatal,
      log: this.log,
    });
    const sink = {
      event: (e: Parameters<Uploader["push"]>[0]) => void this.uploader.push(e),
      report: (r: StatusReport) => this.report(r),
      flush: () => this.flush(),
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

  /** The files the upload backlog is spooled to right now (tests). */
  get spoolFiles(): string[] {
    return this.uploader.spoolFiles;
  }

  /**
   * Every event so far delivered, or held to go with the final status in one call when the API
   * takes that (the lease's `reportEvents`) and they fit in one: the run's end is then one request.
   */
  private async flush(): Promise<void> {
    if (this.lease.reportEvents && (await this.uploader.hold())) {
      this.holding = true;
      return;
    }
    await this.uploader.flush();
  }

  /** A status report; the final one carries the events held for it. */
  private async report(r: StatusReport): Promise<void> {
    if (this.holding && r.status && TERMINAL.has(r.status)) {
      this.holding = false;
      const held = this.uploader.held();
      if (held.events.length && held.bytes + JSON.stringify(r).length <= MAX_REPORT_BYTES) return this.reporter.report({ ...r, events: held.events });
      // Nothing to carry, or too much with this report (a thousand hosts' stats): the usual way.
      this.uploader.resume();
      await this.uploader.flush();
    }
    return this.reporter.report(r);
  }

  private async sendReport(r: StatusReport, signal: AbortSignal): Promise<StatusAnswer> {
    let a: StatusAnswer;
    try {
      a = await this.opts.transport.status({ ...r, ...this.ref }, signal);
    } catch (err) {
      if (!r.events || ApiError.from(err).status !== 400) throw err;
      // A refused event must not cost the run its outcome: the events go the usual way (the
      // uploader mends what is refused), then the status alone.
      this.log.warn("the API refused the final status with the run's last events; sending them apart", { error: ApiError.from(err).message });
      this.uploader.resume();
      await this.uploader.flush();
      const { events: _, ...alone } = r;
      return this.opts.transport.status({ ...alone, ...this.ref }, signal);
    }
    if (r.events) this.uploader.delivered(a.acceptedThrough);
    return a;
  }

  /** An answer renewed the lease until `serverMs` (answers may come back out of order: the latest counts). */
  private renewed(serverMs: number | undefined): void {
    if (typeof serverMs === "number" && serverMs > this.leaseExpiresAt) this.leaseExpiresAt = serverMs;
  }

  /** The lease expired and the API was not reached: the server has ended it agent_lost; so does the run. */
  private expired(): void {
    if (this.execution.phase === "done") return;
    this.leaseLost = true;
    this.log.error("the API was unreachable for the whole lost-agent window: the lease has expired, so the run is killed (the API ends it agent_lost)", {
      leaseExpiresAt: new Date(this.leaseExpiresAt).toISOString(),
    });
    this.execution.abandon("the lease expired");
    // Whatever was still to be sent is for a lease that no longer exists.
    this.reporter.stop();
    void this.uploader.stop();
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
      signal: this.loopsStop.signal,
      onCommand: (cmd) => this.execution.command(cmd),
      onAnswer: (a) => {
        this.renewed(a.leaseExpiresAt);
        // Reachable again: what waits in a backoff goes now.
        this.uploader.retryNow();
        this.reporter.retryNow();
      },
      onFatal: (err) => this.fatal(err),
      log: this.log,
    });
    const toLocal = this.opts.executor.toLocalTime ?? ((ms: number) => ms);
    const watch = leaseWatch({ expiresAt: () => toLocal(this.leaseExpiresAt), onExpired: () => this.expired(), signal: this.loopsStop.signal });
    let result: RunResult;
    try {
      result = await this.execution.run();
    } finally {
      this.loopsStop.abort();
      this.reporter.stop();
      await this.uploader.stop();
      await Promise.all([hb, watch]);
    }
    const out: SessionResult = { ...result, executionId: this.lease.executionId, attempt: this.lease.attempt };
    if (this.leaseLost) out.leaseLost = true;
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
