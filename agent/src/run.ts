// One run of a lease, its lifecycle: workspace → playbook (prepare.ts) → inventory → ansible-playbook
// (environment: ansible-env.ts; what it says: ansible-output.ts) → outcome (outcome.ts) → report →
// cleanup; and the commands that reach it meanwhile (stop, kill, abandon, hand back). The split
// follows buildkite-agent's job runner: this file is the lifecycle, the pieces beside it are the
// phases and the pure rules.
//
// A run knows nothing of HTTP: it gets a lease and a sink (events, status reports, flush) and is
// told of commands through command()/abandon()/handBack(). Everything it hands the sink is
// already redacted. Its processes are isolated as `isolation` says (sandbox.ts).
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { ansibleEnv, LIFELINE_FD, runEnv, type HostKeyChecking } from "./ansible-env.ts";
import { AnsibleOutput } from "./ansible-output.ts";
import { InventoryError, writeRunFiles } from "./inventory.ts";
import { silentLogger, type Logger } from "./log.ts";
import { ansibleError, exitOutcome, finalReport, overrideByRequest, unexpectedOutcome, type Requested, type RunOutcome } from "./outcome.ts";
import { InitFailure, preparePlaybook, prepareIsolation } from "./prepare.ts";
import { endRun, signalGroup, signalProcess, trackingId } from "./process-group.ts";
import { Redactor } from "./redact.ts";
import { NO_ISOLATION, sandboxedCommandPid, spawnIsolated, type Isolation, type SandboxMounts } from "./sandbox.ts";
import type { EventInput, Lease, StatusReport } from "./types.ts";
import { createWorkspace, handOver, prepareWorkRoot, removeWorkspace, type Workspace } from "./workspace.ts";

export interface RunSink {
  /** An event (already redacted); the sink numbers and uploads it. */
  event(e: EventInput): void;
  /** A status report or repositoryLog; resolves when delivered (or given up on). */
  report(r: StatusReport): Promise<void>;
  /**
   * Resolves when every event given so far is delivered (or given up on), or held to go with the
   * final status report that follows (session.ts, when the API takes that).
   */
  flush(): Promise<void>;
}

export interface RunOptions {
  /** Parent directory of the per-execution workspaces (see workspace.ts). */
  workRoot: string;
  ansiblePlaybook?: string;
  hostKeyChecking?: HostKeyChecking;
  knownHosts?: string;
  /** Base environment of git and ansible-playbook; the agent's own RUNNER_* settings are removed from it. */
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Converts a server timestamp (the lease deadline) to this machine's clock. */
  toLocalTime?: (serverMs: number) => number;
  /** After a deadline stop, the kill follows this much later (protocol: 30 s). */
  deadlineKillAfterMs?: number;
  /** When the lease arrived (performance.now()), for the lease → ansible-playbook timing. */
  receivedAt?: number;
  /** Directory holding runner_events.py. */
  callbackDir?: string;
  /** How git and ansible-playbook are isolated (sandbox.ts); default none. */
  isolation?: Isolation;
}

export type Phase = "init" | "running" | "finishing" | "done";

export interface RunResult extends RunOutcome {
  timings: {
    /** Lease received → ansible-playbook spawned. */
    leaseToSpawnMs?: number;
    /** Lease received → the playbook_on_start event. */
    leaseToStartMs?: number;
    /** ansible-playbook spawned → exited. */
    ansibleMs?: number;
    totalMs: number;
    /**
     * When each hop of the run happened (epoch ms, this machine's clock): the lease received, the
     * workspace ready, ansible-playbook spawned, its first event, the process exited (its output
     * read to the end), its processes and workspace cleaned up, the last events delivered (or held
     * for the final status), the final status reported. Logged with "execution finished" (the bench reads them).
     */
    marks: Partial<Record<Mark, number>>;
  };
}

export type Mark = "received" | "workspaceReady" | "spawned" | "firstEvent" | "exited" | "cleanedUp" | "flushed" | "reported";

type Timings = RunResult["timings"];

export const CALLBACK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "ansible", "callback_plugins");

/** The API keeps 4000 characters of a status detail. */
const MAX_DETAIL = 3900;

export class Run {
  readonly lease: Lease;
  readonly executionId: string;
  readonly attempt: number;
  private readonly sink: RunSink;
  private readonly opts: RunOptions;
  private readonly log: Logger;
  private readonly redactor: Redactor;
  private readonly initAbort = new AbortController();
  private readonly trackingId: string;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly reports: Promise<void>[] = [];
  private requested: Requested = null;
  private child: ChildProcess | null = null;
  private ansible: ChildProcess | null = null;
  private ws: Workspace | null = null;
  private _phase: Phase = "init";
  /** What ansible-playbook says: events for the sink, and whether the playbook started. */
  private readonly output: AnsibleOutput;
  private readonly timings: Timings = { totalMs: 0, marks: {} };
  private readonly receivedAt: number;
  private readonly iso: Isolation;
  private mounts: SandboxMounts = { rw: [], ro: [] };
  private callbackDir: string;

  constructor(lease: Lease, sink: RunSink, opts: RunOptions) {
    this.lease = lease;
    this.executionId = lease.executionId;
    this.attempt = lease.attempt;
    this.sink = sink;
    this.opts = opts;
    this.log = (opts.log ?? silentLogger).child({ executionId: lease.executionId, attempt: lease.attempt });
    this.redactor = new Redactor(lease.secrets ?? []);
    this.trackingId = trackingId(opts.workRoot, `${lease.executionId}:${lease.attempt}:${randomBytes(4).toString("hex")}`);
    this.receivedAt = opts.receivedAt ?? performance.now();
    this.iso = opts.isolation ?? NO_ISOLATION;
    this.callbackDir = opts.callbackDir ?? CALLBACK_DIR;
    this.mark("received", this.receivedAt);
    this.output = new AnsibleOutput(
      this.redactor,
      (e) => this.emit(e),
      () => {
        this.timings.leaseToStartMs = performance.now() - this.receivedAt;
        this.log.info("playbook started");
        if (!this.requested) void this.report({ status: "RUNNING" });
      },
    );
  }

  get phase(): Phase {
    return this._phase;
  }

  /** True once the playbook has started (the playbook_on_start event). */
  get playbookStarted(): boolean {
    return this.output.started;
  }

  // ---- commands ---------------------------------------------------------------------------------

  /** stop: SIGINT to ansible-playbook (it ends before its next task); kill: SIGKILL to its whole process group. */
  command(cmd: "stop" | "kill", reason?: string): void {
    if (this._phase === "done" || this.requested?.kind === "abandon" || this.requested?.kind === "handback") return;
    if (cmd === "stop") {
      if (this.requested) return; // already stopping or killing
      this.requested = { kind: "stop", reason: reason ?? "stopped" };
      this.log.info("stop requested", { reason: this.requested.reason });
      if (this.ansible && this.ansible.exitCode === null && this.ansible.signalCode === null) this.interruptAnsible();
      else if (!this.ansible) this.abortInit();
      return;
    }
    if (this.requested?.kind === "kill") return;
    this.requested = { kind: "kill", reason: reason ?? "killed" };
    this.log.info("kill requested", { reason: this.requested.reason });
    this.killNow();
  }

  /**
   * The server says this run is not ours (any more), or its lease expired while the API was
   * unreachable (`why`): kill it, report nothing.
   */
  abandon(why?: string): void {
    if (this._phase === "done") return;
    this.requested = { kind: "abandon" };
    this.log.warn(`${why ?? "the API says this execution is no longer ours"}: abandoning it`);
    this.killNow();
  }

  /** Shutting down: give the execution back if its playbook has not started. True if it was. */
  handBack(): boolean {
    if (this._phase === "done" || this.output.started || this.requested) return false;
    this.requested = { kind: "handback" };
    this.killNow();
    return true;
  }

  /**
   * SIGINT to ansible-playbook alone (its workers and ssh connections finish the running task).
   * In the sandbox it is bwrap's grandchild, which may take a moment to appear after the spawn.
   */
  private interruptAnsible(tries = 0): void {
    const child = this.ansible;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    if (this.iso.level !== "sandbox") {
      signalProcess(child.pid, "SIGINT");
      return;
    }
    const pid = sandboxedCommandPid(child.pid);
    if (pid) signalProcess(pid, "SIGINT");
    else if (tries < 100) setTimeout(() => this.interruptAnsible(tries + 1), 20);
  }

  private killNow(): void {
    this.abortInit();
    if (this.child) signalGroup(this.child.pid, "SIGKILL");
    if (this.ansible) signalGroup(this.ansible.pid, "SIGKILL");
  }

  private abortInit(): void {
    if (!this.initAbort.signal.aborted) this.initAbort.abort();
    if (this.child && this.child !== this.ansible) signalGroup(this.child.pid, "SIGKILL");
  }

  private checkAborted(): void {
    if (this.requested) throw new InitFailure("aborted", "aborted");
  }

  private armDeadline(): void {
    const deadline = this.lease.deadline;
    if (!deadline) return;
    const local = this.opts.toLocalTime ? this.opts.toLocalTime(deadline) : deadline;
    const stopIn = Math.max(0, local - Date.now());
    const killIn = stopIn + (this.opts.deadlineKillAfterMs ?? 30_000);
    const cap = 2 ** 31 - 1; // setTimeout's limit (~24.8 days)
    if (stopIn < cap) this.timers.push(setTimeout(() => this.command("stop", "ttl_expired"), stopIn));
    if (killIn < cap) this.timers.push(setTimeout(() => this.command("kill", "ttl_expired"), killIn));
  }

  // ---- what goes to the sink ----------------------------------------------------------------------

  /** Records when a hop happened (`at`: performance.now(), default now). */
  private mark(m: Mark, at = performance.now()): void {
    this.timings.marks[m] ??= Math.round((performance.timeOrigin + at) * 10) / 10;
  }

  /** An event (already redacted) to the sink, unless the run was abandoned. */
  private emit(e: EventInput): void {
    if (this.requested?.kind === "abandon") return;
    if (this.timings.marks.firstEvent === undefined) this.mark("firstEvent");
    this.sink.event(e);
  }

  private report(r: StatusReport): Promise<void> {
    r = this.redactor.report(r);
    if (r.detail && r.detail.length > MAX_DETAIL) r = { ...r, detail: `${r.detail.slice(0, MAX_DETAIL - 1)}…` };
    const p = this.sink.report(r).catch((err) => this.log.warn("status report failed", { error: err }));
    this.reports.push(p);
    return p;
  }

  // ---- the lifecycle ------------------------------------------------------------------------------

  async run(): Promise<RunResult> {
    const timings = this.timings;
    let result: RunOutcome;
    let flushed: Promise<void> | null = null;
    this.armDeadline();
    try {
      result = await this.runPhases(timings);
    } catch (err) {
      this.log.error("execution failed unexpectedly", { error: err });
      result = unexpectedOutcome(err, this.output.started);
    } finally {
      for (const t of this.timers) clearTimeout(t);
      this._phase = "finishing";
      // Every event is in the sink now: the last batch goes at once (not on the next batch tick),
      // while the run's processes and workspace are cleaned up.
      if (this.requested?.kind !== "abandon" && this.requested?.kind !== "handback") flushed = this.flushAll();
      await this.cleanup();
      this.mark("cleanedUp");
    }
    timings.totalMs = performance.now() - this.receivedAt;
    if (overrideByRequest(this.requested, result).status) await (flushed ?? this.flushAll());
    // Decided after the last upload: a stop or kill that came in its answer still counts.
    result = overrideByRequest(this.requested, result);
    const report = finalReport(result);
    if (report) {
      await this.report(report);
      this.mark("reported");
    }
    this._phase = "done";
    this.log.info("execution finished", {
      status: result.status ?? (result.abandoned ? "abandoned" : "handed back"),
      reason: result.reason,
      ms: Math.round(timings.totalMs),
      hops: timings.marks,
    });
    return { ...result, timings };
  }

  /** The reports given so far, then every event: delivered (or given up on). */
  private async flushAll(): Promise<void> {
    await Promise.all(this.reports);
    await this.sink.flush();
    this.mark("flushed");
  }

  /** Workspace, playbook, inventory, ansible-playbook; a failure to prepare is an INIT_FAILURE. */
  private async runPhases(timings: Timings): Promise<RunOutcome> {
    try {
      const ws = await this.createWorkspace();
      const env = runEnv(this.iso.level, this.opts.env, ws.home);
      this.checkAborted();
      // An inline playbook is one file: the sandbox's files, the playbook and the run's files are
      // written side by side. A clone waits for the sandbox's files (git runs inside) and comes
      // before the run's files (written only once it worked).
      const inline = !!this.lease.job.playbook;
      const isolated = this.prepareIsolation(ws);
      if (!inline) {
        await isolated;
        this.checkAborted();
      }
      const playbookReady = preparePlaybook(
        {
          job: this.lease.job,
          hostKeyChecking: this.opts.hostKeyChecking ?? "off",
          knownHosts: this.opts.knownHosts,
          env,
          trackingId: this.trackingId,
          signal: this.initAbort.signal,
          onSpawn: (c) => (this.child = c),
          onSecret: (s) => this.redactor.add(s),
          spawn: (cmd, args, o) => spawnIsolated(this.iso, this.mounts, cmd, args, o),
          onCloned: (repositoryLog) => {
            this.log.info("repository cloned", { commit: repositoryLog.commit, branch: repositoryLog.branch });
            void this.report({ repositoryLog });
          },
        },
        ws,
      );
      if (!inline) {
        await playbookReady;
        this.checkAborted();
      }
      const filesReady = writeRunFiles(this.lease, ws.private).catch((err) => {
        throw err instanceof InventoryError ? new InitFailure("workspace_failed", err.message) : err;
      });
      // Every write settled before a failure is reported (none left in flight behind it).
      const failed = (await Promise.allSettled([isolated, playbookReady, filesReady])).find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      const [playbook, runFiles] = [await playbookReady, await filesReady];
      this.checkAborted();
      await handOver(ws, this.lease.job.playbook ? [join(ws.project, "playbook.yml")] : []);
      this.checkAborted();
      return await this.runAnsible(ws, env, [...runFiles.args, playbook], timings);
    } catch (err) {
      if (this.requested) return { status: null };
      if (err instanceof InitFailure) {
        this.log.warn("execution could not start", { reason: err.reason, detail: this.redactor.text(err.message) });
        return { status: "INIT_FAILURE", reason: err.reason, detail: err.message };
      }
      throw err;
    }
  }

  /** The run's private directories (its slot user's, when it has one). */
  private async createWorkspace(): Promise<Workspace> {
    const owner = this.iso.uid !== undefined ? { uid: this.iso.uid, gid: this.iso.gid ?? this.iso.uid } : undefined;
    try {
      await prepareWorkRoot(this.opts.workRoot, { traversable: !!owner });
      this.ws = await createWorkspace(this.opts.workRoot, this.executionId, owner);
      return this.ws;
    } catch (err) {
      throw this.workspaceFailed(err);
    }
  }

  /** The sandbox's mounts and files, and the run's copy of the callback plugin. */
  private async prepareIsolation(ws: Workspace): Promise<void> {
    try {
      const prepared = await prepareIsolation(ws, this.iso, { callbackDir: this.callbackDir, knownHosts: this.opts.knownHosts });
      this.mounts = prepared.mounts;
      this.callbackDir = prepared.callbackDir;
      this.mark("workspaceReady");
    } catch (err) {
      throw this.workspaceFailed(err);
    }
  }

  private workspaceFailed(err: unknown): InitFailure {
    return new InitFailure("workspace_failed", `could not create the workspace under ${this.opts.workRoot}: ${(err as Error).message}`);
  }

  private async runAnsible(ws: Workspace, base: NodeJS.ProcessEnv, args: string[], timings: Timings): Promise<RunOutcome> {
    const env = ansibleEnv({
      base,
      trackingId: this.trackingId,
      callbackDir: this.callbackDir,
      hostKeyChecking: this.opts.hostKeyChecking ?? "off",
      knownHosts: this.opts.knownHosts,
      ws,
      // A slot uid runs nothing but this run; never the agent's own user (none), never root.
      lifelineUid: this.iso.level === "uid" ? this.iso.uid : undefined,
    });
    const cmd = this.opts.ansiblePlaybook ?? "ansible-playbook";
    this.log.debug("starting ansible-playbook", { args: args.join(" ") });

    // fd 3: events; fd 4 (LIFELINE_FD): the lifeline, a socket whose other end only this process
    // holds (close-on-exec), so that the run dies with the agent even when no sandbox does it.
    const child = spawnIsolated(this.iso, this.mounts, cmd, args, { cwd: ws.project, env, stdio: ["ignore", "pipe", "pipe", "pipe", "pipe"] });
    const lifeline = child.stdio[LIFELINE_FD] as (NodeJS.ReadableStream & { destroy(): void }) | null;
    lifeline?.on("error", () => {}).resume(); // nothing is ever sent on it either way
    const spawnedAt = performance.now();
    this.mark("spawned", spawnedAt);
    timings.leaseToSpawnMs = spawnedAt - this.receivedAt;
    this.ansible = child;
    this.child = child;
    this._phase = "running";
    // A stop that came while we were preparing reaches ansible-playbook now.
    if (this.requested?.kind === "stop") this.interruptAnsible();
    if (this.requested && this.requested.kind !== "stop") signalGroup(child.pid, "SIGKILL");

    const eventsDone = this.output.readEvents(child.stdio[3] as NodeJS.ReadableStream);
    const stdoutDone = this.output.readOutput(child.stdout!, "stdout");
    const stderrDone = this.output.readOutput(child.stderr!, "stderr");

    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((res) => {
      child.once("error", (error) => res({ code: null, signal: null, error }));
      child.once("exit", (code, signal) => res({ code, signal }));
    });
    timings.ansibleMs = performance.now() - spawnedAt;
    if (exit.error) {
      const e = exit.error as NodeJS.ErrnoException;
      throw new InitFailure(
        "workspace_failed",
        e.code === "ENOENT" ? `${cmd} is not installed on the agent's machine (install ansible-core >= 2.14)` : `could not start ${cmd}: ${e.message}`,
      );
    }
    // Streams end when the last process holding them exits; don't wait forever for a daemonised straggler.
    await Promise.race([Promise.all([eventsDone, stdoutDone, stderrDone]), new Promise((r) => setTimeout(r, 3000))]);
    for (const s of [child.stdout, child.stderr, child.stdio[3], lifeline]) (s as NodeJS.ReadableStream & { destroy?: () => void })?.destroy?.();
    this.mark("exited");
    this.log.debug("ansible-playbook exited", { code: exit.code, signal: exit.signal });
    return exitOutcome({
      code: exit.code,
      signal: exit.signal,
      started: this.output.started,
      stats: this.output.stats,
      failedSeen: this.output.failedSeen,
      ansibleError: ansibleError(this.output.stderrTail, ws),
    });
  }

  /** Nothing of the execution survives it: processes (ssh masters included), then files. */
  private async cleanup(): Promise<void> {
    const kill = !!this.requested && this.requested.kind !== "stop";
    // Stragglers in the groups (a worker, a daemon a local task started) get a moment to end.
    const groups = [...new Set([this.ansible?.pid, this.child?.pid])].filter((p): p is number => !!p);
    try {
      // Whatever escaped the tracking (a cleared environment, a new session) is still the slot's user.
      const { tracked, byUid } = await endRun({ groups, kill, trackingId: this.trackingId, uid: this.iso.uid, graceMs: 1000 });
      if (tracked) this.log.debug("ended leftover processes", { count: tracked });
      if (byUid) this.log.warn("killed processes of the run that had left its process group and tracking", { count: byUid });
    } catch (err) {
      this.log.warn("could not look for leftover processes", { error: err });
    }
    // Their pids may be reused from now on: nothing may signal them any more.
    this.ansible = null;
    this.child = null;
    if (this.ws) {
      await removeWorkspace(this.ws.dir).catch((err) => this.log.error("could not remove the workspace", { dir: this.ws?.dir, error: err }));
    }
  }
}
