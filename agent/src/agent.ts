// `runner-agent run`: the lease loop and the executions it starts, and what happens on signals.
//
// First SIGTERM/SIGINT: take no new work; hand back executions whose playbook has not started;
// let the running ones finish for the grace period, then stop them (they end STOPPED), then, if
// they are still there after the stop timeout, kill them. A second signal kills them at once.
import { join } from "node:path";
import type { ApiClient, ApiError } from "./api-client.ts";

import { leaseLoop } from "./loops/lease.ts";
import { silentLogger, type Logger } from "./log.ts";
import { killByUid, killOrphans } from "./process-group.ts";
import type { Isolation, IsolationLevel } from "./sandbox.ts";
import { clearSpoolDir } from "./spool.ts";
import { HeldStore, type HeldExecution } from "./state.ts";
import { apiTransport, Session, type SessionResult } from "./session.ts";
import type { Lease } from "./types.ts";
import type { RunOptions } from "./run.ts";
import { prepareWorkRoot, sweepStaleWorkspaces } from "./workspace.ts";

export const EXIT = {
  OK: 0,
  ERROR: 1,
  CONFIG: 2,
  REJECTED: 3,
  STOPPED: 4,
  KILLED: 5,
  ISOLATION: 6,
} as const;

export interface AgentOptions {
  client: ApiClient;
  concurrency: number;
  pollWaitMs: number;
  heartbeatIntervalMs: number;
  executor: Omit<RunOptions, "receivedAt" | "log" | "toLocalTime">;
  /** How long running executions may go on after the first signal before they are stopped. */
  shutdownGraceMs: number;
  /** After the stop, how long before they are killed. */
  stopTimeoutMs?: number;
  /** Exit after one execution. */
  once?: boolean;
  log?: Logger;
  /** Called with each finished execution (tests, figures). */
  onResult?(r: SessionResult): void;
  /**
   * How executions are isolated (sandbox.ts). With `uidBase`, slot i runs as uid/gid uidBase+i;
   * `hide` lists the agent's own files to mask inside a sandbox. Default: none.
   */
  isolation?: { level: IsolationLevel; uidBase?: number; hide?: string[] };
  /** Where the agent keeps what it holds (state.ts), so that after a crash the next one reports it. */
  stateDir?: string;
}

export class Agent {
  private readonly opts: AgentOptions;
  private readonly log: Logger;
  private readonly sessions = new Map<string, { session: Session; done: Promise<void> }>();
  /** Which execution holds each concurrency slot (and so each slot user). */
  private readonly slots: (string | null)[];
  private readonly held: HeldStore | null;
  private readonly leaseStop = new AbortController();
  private slotWaiters: (() => void)[] = [];
  private shuttingDown = false;
  private shutdownTimers: NodeJS.Timeout[] = [];
  private outcome: number = EXIT.OK;
  private leased = 0;
  private fatal: ApiError | null = null;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.slots = Array.from({ length: opts.concurrency }, () => null);
    this.held = opts.stateDir ? new HeldStore(opts.stateDir) : null;
  }

  /**
   * Executions an earlier process of this agent held when it died: their runs died with it (the
   * sandbox dies with its parent; the orphan sweep ends the rest), so say so at once instead of
   * letting the server wait out the lease: one not started goes back to the queue, a running one
   * ends FAILURE agent_lost.
   */
  private async reportLost(lost: HeldExecution[]): Promise<void> {
    for (const h of lost) {
      const ref = { attempt: h.attempt, leaseId: h.leaseId };
      try {
        await this.opts.client.release(h.executionId, ref);
        this.log.warn("handed back an execution an earlier agent process held before it started", { executionId: h.executionId });
        continue;
      } catch (err) {
        if ((err as ApiError).status !== 409) {
          this.log.warn("could not report an execution an earlier agent process held", { executionId: h.executionId, error: err });
          continue;
        }
      }
      try {
        await this.opts.client.status(h.executionId, {
          ...ref,
          status: "FAILURE",
          reason: "agent_lost",
          detail: "the agent stopped (killed or crashed) while this execution ran; its run ended with it",
        });
        this.log.warn("reported an execution an earlier agent process held as lost", { executionId: h.executionId });
      } catch (err) {
        // 409: the server had already ended it (or given it to another agent).
        if ((err as ApiError).status !== 409)
          this.log.warn("could not report an execution an earlier agent process held", { executionId: h.executionId, error: err });
      }
    }
  }

  /** Where sessions spool their upload backlog beyond the memory cap (in the state directory: the agent's alone). */
  private get spoolDir(): string | undefined {
    return this.opts.stateDir ? join(this.opts.stateDir, "spool") : undefined;
  }

  private isolationFor(slot: number): Isolation {
    const iso = this.opts.isolation;
    if (!iso || iso.level === "none") return { level: "none" };
    const out: Isolation = { level: iso.level, hide: iso.hide };
    if (iso.uidBase !== undefined) out.uid = out.gid = iso.uidBase + slot;
    return out;
  }

  get running(): string[] {
    return [...this.sessions.keys()];
  }

  /** Events produced and not yet accepted by the API, over every execution held (metrics). */
  get uploadBacklog(): number {
    let n = 0;
    for (const { session } of this.sessions.values()) n += session.uploadBacklog;
    return n;
  }

  /** Runs until a signal (see the file comment), a rejected credential, or --once is done. Answers the exit code. */
  async run(): Promise<number> {
    const uidBase = this.opts.isolation?.level !== "none" ? this.opts.isolation?.uidBase : undefined;
    await prepareWorkRoot(this.opts.executor.workRoot, { traversable: uidBase !== undefined });
    // Processes first, then their workspaces: an orphaned playbook may still be writing in one.
    let orphans = await killOrphans(this.opts.executor.workRoot);
    // The slot users belong to this installation alone: whatever still runs as one is left over.
    if (uidBase !== undefined) for (let i = 0; i < this.slots.length; i++) orphans += await killByUid(uidBase + i);
    if (orphans) this.log.warn("killed processes left by an earlier agent that did not exit cleanly", { count: orphans });
    await sweepStaleWorkspaces(this.opts.executor.workRoot, this.log);
    // What an earlier process spooled belongs to executions it held: reported lost just below.
    if (this.spoolDir) clearSpoolDir(this.spoolDir);
    if (this.held) {
      await this.reportLost(await this.held.previous());
      await this.held.save();
    }

    await leaseLoop({
      // Every poll says how many executions this agent runs at once (GET /minions shows it).
      lease: (body, signal) => this.opts.client.lease({ ...body, concurrency: this.opts.concurrency }, signal),
      running: () => this.running,
      capacity: () => (this.opts.once && this.leased > 0 ? 0 : this.opts.concurrency - this.sessions.size),
      waitForSlot: (signal) => this.waitForSlot(signal),
      onLease: (lease) => this.start(lease),
      onFatal: (err) => this.onFatal(err),
      pollWaitMs: this.opts.pollWaitMs,
      signal: this.leaseStop.signal,
      log: this.log,
    });
    await Promise.all([...this.sessions.values()].map((s) => s.done));
    for (const t of this.shutdownTimers) clearTimeout(t);
    if (this.fatal) return EXIT.REJECTED;
    return this.outcome;
  }

  private waitForSlot(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.slotWaiters.push(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  private freeSlot(): void {
    const ws = this.slotWaiters;
    this.slotWaiters = [];
    for (const w of ws) w();
  }

  private start(lease: Lease): void {
    if (this.sessions.has(lease.executionId)) {
      this.log.warn("the API leased an execution this agent already runs; ignoring the duplicate", { executionId: lease.executionId });
      return;
    }
    const slot = this.slots.indexOf(null);
    if (slot < 0) {
      // The lease loop asks only with a free slot; never run two executions as one slot user.
      this.log.error("a lease came with every slot taken; leaving it to expire", { executionId: lease.executionId });
      return;
    }
    this.slots[slot] = lease.executionId;
    void this.held?.add({ executionId: lease.executionId, attempt: lease.attempt, leaseId: lease.leaseId });
    this.leased++;
    const client = this.opts.client;
    const session = new Session(lease, {
      transport: apiTransport(client, lease.executionId),
      executor: { ...this.opts.executor, isolation: this.isolationFor(slot), toLocalTime: (ms) => client.toLocalTime(ms) },
      heartbeatIntervalMs: this.opts.heartbeatIntervalMs,
      spoolDir: this.spoolDir,
      onUnauthorized: (err) => this.onFatal(err),
      log: this.log,
    });
    this.log.info("execution leased", { executionId: lease.executionId, attempt: lease.attempt, jobId: lease.jobId, running: this.sessions.size + 1 });
    const done = session
      .run()
      .then((r) => this.opts.onResult?.(r))
      .catch((err) => this.log.error("execution crashed", { executionId: lease.executionId, error: err }))
      .finally(() => {
        this.sessions.delete(lease.executionId);
        this.slots[slot] = null;
        void this.held?.remove(lease.executionId);
        this.freeSlot();
        if (this.opts.once && this.sessions.size === 0) this.leaseStop.abort();
      });
    this.sessions.set(lease.executionId, { session, done });
    // A shutdown that began while this lease was on its way hands it straight back.
    if (this.shuttingDown && session.execution.handBack()) this.log.info("handing back an execution leased during shutdown");
  }

  private onFatal(err: ApiError): void {
    if (this.fatal) return;
    this.fatal = err;
    const msg =
      err.status === 401
        ? "the API rejected this agent's credential (revoked or unknown): register the agent again"
        : err.status === 404
          ? `${this.opts.client.baseUrl} does not answer the agent protocol (404): check --url`
          : `the API refused the agent's request (${err.status}), which retrying will not fix`;
    this.log.error(msg, { error: err.message });
    this.leaseStop.abort();
    for (const { session } of this.sessions.values()) session.execution.abandon();
  }

  /** First signal: graceful shutdown. Second: kill. */
  shutdown(signal = "SIGTERM"): void {
    if (this.shuttingDown) {
      this.log.warn("second signal: killing the running executions", { signal });
      this.killAll();
      return;
    }
    this.shuttingDown = true;
    this.leaseStop.abort();
    let handedBack = 0;
    for (const { session } of this.sessions.values()) if (session.execution.handBack()) handedBack++;
    const running = this.sessions.size - handedBack;
    this.log.info("shutting down: no new work", {
      signal,
      handedBack,
      running,
      graceSeconds: Math.round(this.opts.shutdownGraceMs / 1000),
    });
    const stopTimeout = this.opts.stopTimeoutMs ?? 30_000;
    this.shutdownTimers.push(
      setTimeout(() => {
        const left = this.liveSessions();
        if (!left.length) return;
        this.log.warn("grace period over: stopping the running executions", { count: left.length });
        this.outcome = Math.max(this.outcome, EXIT.STOPPED);
        for (const s of left) s.command("stop", "agent_shutdown");
        this.shutdownTimers.push(
          setTimeout(() => {
            if (!this.liveSessions().length) return;
            this.log.warn("the stop did not end them in time: killing");
            this.killAll();
          }, stopTimeout),
        );
      }, this.opts.shutdownGraceMs),
    );
  }

  private liveSessions(): Session[] {
    return [...this.sessions.values()].map((s) => s.session).filter((s) => s.execution.phase !== "done" && s.execution.phase !== "finishing");
  }

  private killAll(): void {
    const left = this.liveSessions();
    if (left.length) this.outcome = EXIT.KILLED;
    for (const s of left) s.command("kill", "agent_shutdown");
  }

  /** SIGTERM/SIGINT handlers for the process; returns a function that removes them. */
  installSignalHandlers(): () => void {
    const onSignal = (sig: NodeJS.Signals) => this.shutdown(sig);
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    return () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    };
  }
}
