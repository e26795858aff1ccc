// One execution: workspace → clone or inline playbook → inventory → ansible-playbook → report.
//
// The executor knows nothing of HTTP: it gets a lease and a sink (events, status reports, flush)
// and is told of commands through command()/abandon()/handBack(). Everything it hands the sink
// is already redacted.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, realpath, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { limitEvent, parsePluginLine, verboseEvent } from "./events.ts";
import { cloneRepository, CloneError } from "./git.ts";
import { InventoryError, writeRunFiles } from "./inventory.ts";
import { LineSplitter } from "./lines.ts";
import { silentLogger, type Logger } from "./log.ts";
import { killByUid, killTracked, signalGroup, signalProcess, terminateGroup, TRACKING_ENV, trackingId } from "./process-group.ts";
import { Redactor, StreamRedactor } from "./redact.ts";
import { isolatedEnv, NO_ISOLATION, passwdFiles, sandboxedCommandPid, spawnIsolated, type Isolation, type SandboxMounts } from "./sandbox.ts";
import type { EventInput, HostStats, Lease, StatusReport, TerminalStatus } from "./types.ts";
import { createWorkspace, handOver, prepareWorkRoot, removeWorkspace, type Workspace } from "./workspace.ts";

export interface ExecutionSink {
  /** An event (already redacted); the sink numbers and uploads it. */
  event(e: EventInput): void;
  /** A status report or repositoryLog; resolves when delivered (or given up on). */
  report(r: StatusReport): Promise<void>;
  /** Resolves when every event given so far is delivered (or given up on). */
  flush(): Promise<void>;
}

export interface ExecutorOptions {
  /** Parent directory of the per-execution workspaces (see workspace.ts). */
  workRoot: string;
  ansiblePlaybook?: string;
  hostKeyChecking?: "off" | "strict";
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

export interface ExecutionResult {
  /** The terminal status reported; null when the run was abandoned or handed back. */
  status: TerminalStatus | null;
  reason?: string;
  detail?: string;
  exitCode?: number | null;
  hostStats?: Record<string, HostStats>;
  failedHosts?: string[];
  abandoned?: boolean;
  handedBack?: boolean;
  timings: {
    /** Lease received → ansible-playbook spawned. */
    leaseToSpawnMs?: number;
    /** Lease received → the playbook_on_start event. */
    leaseToStartMs?: number;
    /** ansible-playbook spawned → exited. */
    ansibleMs?: number;
    totalMs: number;
  };
}

type Requested = null | { kind: "stop" | "kill"; reason: string } | { kind: "abandon" | "handback"; reason?: undefined };

export const CALLBACK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "ansible", "callback_plugins");

const INIT_ERROR_TAIL = 8 * 1024;

/** The environment of child processes: no agent secrets (a playbook could read them with lookup('env')). */
export function childEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) {
    if (k.startsWith("RUNNER_") || k === TRACKING_ENV) continue;
    env[k] = v;
  }
  // ansible-core refuses to start without a UTF-8 locale (systemd services often have none).
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || "";
  if (!/utf-?8/i.test(locale)) env.LC_ALL = "C.UTF-8";
  return env;
}

class InitFailure extends Error {
  readonly reason: string;
  constructor(reason: string, detail: string) {
    super(detail);
    this.reason = reason;
  }
}

export class Execution {
  readonly lease: Lease;
  readonly executionId: string;
  readonly attempt: number;
  private readonly sink: ExecutionSink;
  private readonly opts: ExecutorOptions;
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
  private started = false;
  private stats: Record<string, HostStats> | null = null;
  private readonly failedSeen = new Set<string>();
  private stderrTail = "";
  private readonly receivedAt: number;
  private readonly iso: Isolation;
  private mounts: SandboxMounts = { rw: [], ro: [] };
  private callbackDir: string;

  constructor(lease: Lease, sink: ExecutionSink, opts: ExecutorOptions) {
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
  }

  get phase(): Phase {
    return this._phase;
  }

  /** True once the playbook has started (the playbook_on_start event). */
  get playbookStarted(): boolean {
    return this.started;
  }

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

  /** The server says this run is not ours (any more): kill it, report nothing. */
  abandon(): void {
    if (this._phase === "done") return;
    this.requested = { kind: "abandon" };
    this.log.warn("the API says this execution is no longer ours: abandoning it");
    this.killNow();
  }

  /** Shutting down: give the execution back if its playbook has not started. True if it was. */
  handBack(): boolean {
    if (this._phase === "done" || this.started || this.requested) return false;
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

  private emit(e: EventInput): void {
    if (this.requested?.kind === "abandon") return;
    this.sink.event(limitEvent(this.redactor.event(e)));
  }

  private report(r: StatusReport): Promise<void> {
    r = this.redactor.report(r);
    if (r.detail && r.detail.length > 3900) r = { ...r, detail: r.detail.slice(0, 3899) + "…" }; // the API keeps 4000
    const p = this.sink.report(r).catch((err) => this.log.warn("status report failed", { error: err }));
    this.reports.push(p);
    return p;
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

  async run(): Promise<ExecutionResult> {
    const t0 = this.receivedAt;
    const timings: ExecutionResult["timings"] = { totalMs: 0 };
    let result: Omit<ExecutionResult, "timings">;
    this.armDeadline();
    try {
      result = await this.runInner(timings);
    } catch (err) {
      // A bug or an unexpected failure of the machine: still end the execution, with the reason.
      this.log.error("execution failed unexpectedly", { error: err });
      result = { status: "INIT_FAILURE", reason: "workspace_failed", detail: `runner-agent: ${String((err as Error)?.message ?? err)}` };
      if (this.started) result = { status: "FAILURE", reason: "agent_error", detail: result.detail };
    } finally {
      for (const t of this.timers) clearTimeout(t);
      this._phase = "finishing";
      await this.cleanup();
    }
    timings.totalMs = performance.now() - t0;
    if (this.overrideByRequest(result).status) {
      await Promise.all(this.reports);
      await this.sink.flush();
    }
    // Decided after the last upload: a stop or kill that came in its answer still counts.
    result = this.overrideByRequest(result);
    if (result.status) {
      const report: StatusReport = { status: result.status };
      if (result.reason) report.reason = result.reason;
      if (result.detail) report.detail = result.detail;
      if (result.exitCode !== undefined) report.exitCode = result.exitCode;
      if (result.hostStats) report.hostStats = result.hostStats;
      if (result.failedHosts) report.failedHosts = result.failedHosts;
      await this.report(report);
    }
    this._phase = "done";
    this.log.info("execution finished", {
      status: result.status ?? (result.abandoned ? "abandoned" : "handed back"),
      reason: result.reason,
      ms: Math.round(timings.totalMs),
    });
    return { ...result, timings };
  }

  /** Stop, kill, abandon and hand-back decide the outcome whatever the run itself ended with. */
  private overrideByRequest(r: Omit<ExecutionResult, "timings">): Omit<ExecutionResult, "timings"> {
    const req = this.requested;
    if (!req) return r;
    if (req.kind === "abandon") return { status: null, abandoned: true };
    if (req.kind === "handback") return { status: null, handedBack: true };
    const status: TerminalStatus = req.kind === "kill" ? "KILLED" : "STOPPED";
    const out: Omit<ExecutionResult, "timings"> = { status, reason: req.reason, exitCode: r.exitCode };
    if (r.hostStats) out.hostStats = r.hostStats;
    return out;
  }

  private async runInner(timings: ExecutionResult["timings"]): Promise<Omit<ExecutionResult, "timings">> {
    let playbook: string;
    try {
      const owner = this.iso.uid !== undefined ? { uid: this.iso.uid, gid: this.iso.gid ?? this.iso.uid } : undefined;
      try {
        await prepareWorkRoot(this.opts.workRoot, { traversable: !!owner });
        this.ws = await createWorkspace(this.opts.workRoot, this.executionId, owner);
        await this.prepareIsolation(this.ws);
      } catch (err) {
        throw new InitFailure("workspace_failed", `could not create the workspace under ${this.opts.workRoot}: ${(err as Error).message}`);
      }
      const ws = this.ws;
      // An isolated run gets what it needs of the environment, nothing of the agent's (HOME included).
      const env = this.iso.level === "none" ? childEnv(this.opts.env) : isolatedEnv(childEnv(this.opts.env), ws.home);
      this.checkAborted();
      playbook = await this.preparePlaybook(ws, env);
      this.checkAborted();
      let runFiles;
      try {
        runFiles = await writeRunFiles(this.lease, ws.private);
      } catch (err) {
        if (err instanceof InventoryError) throw new InitFailure("workspace_failed", err.message);
        throw err;
      }
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

  /** The sandbox's mounts: the run's own directories (its keys read-only), its passwd entry. */
  private async prepareIsolation(ws: Workspace): Promise<void> {
    if (this.iso.level === "none") return;
    this.mounts = { rw: [ws.project, ws.tmp, ws.cp, ws.home], ro: [ws.private] };
    // The agent's install directory may not be readable (or visible) to the run: a copy goes with it.
    const own = join(ws.private, "callback_plugins");
    await mkdir(own, { mode: 0o700 });
    await copyFile(join(this.callbackDir, "runner_events.py"), join(own, "runner_events.py"));
    this.callbackDir = own;
    if (this.opts.knownHosts) this.mounts.ro.push(this.opts.knownHosts);
    if (this.iso.level === "sandbox") {
      const uid = this.iso.uid ?? process.getuid?.() ?? 0;
      const files = passwdFiles(uid, this.iso.gid ?? uid, ws.home);
      this.mounts.passwd = join(ws.dir, "passwd");
      this.mounts.group = join(ws.dir, "group");
      await writeFile(this.mounts.passwd, files.passwd, { mode: 0o644 });
      await writeFile(this.mounts.group, files.group, { mode: 0o644 });
    }
  }

  /** Starts git or ansible-playbook as the run's isolation says, leading a process group. */
  private spawn(cmd: string, args: string[], opts: Parameters<typeof spawnIsolated>[4]): ChildProcess {
    return spawnIsolated(this.iso, this.mounts, cmd, args, opts);
  }

  private checkAborted(): void {
    if (this.requested) throw new InitFailure("aborted", "aborted");
  }

  /** Writes the inline playbook or clones the repository; answers the playbook path relative to project/. */
  private async preparePlaybook(ws: Workspace, env: NodeJS.ProcessEnv): Promise<string> {
    const job = this.lease.job;
    if (job.playbook) {
      const compact = job.playbook.replace(/\s+/g, "");
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length === 0) {
        throw new InitFailure("playbook_invalid", "the job's playbook is not base64 (it must be the base64 of one playbook YAML file)");
      }
      const text = Buffer.from(compact, "base64").toString("utf8");
      if (!text.trim()) throw new InitFailure("playbook_invalid", "the job's playbook is empty");
      await writeFile(join(ws.project, "playbook.yml"), text, { mode: 0o600 });
      return "playbook.yml";
    }
    const repo = job.repository;
    if (!repo || !repo.url) throw new InitFailure("playbook_not_found", "the job has neither a playbook nor a repository");
    let repositoryLog;
    try {
      repositoryLog = await cloneRepository({
        repo,
        dest: ws.project,
        privateDir: ws.private,
        hostKeyChecking: this.opts.hostKeyChecking ?? "off",
        knownHosts: this.opts.knownHosts,
        env: { ...env, [TRACKING_ENV]: this.trackingId },
        signal: this.initAbort.signal,
        onSpawn: (c) => (this.child = c),
        onSecret: (s) => this.redactor.add(s),
        spawn: (args, o) => this.spawn("git", args, o),
        beforeGit: () => handOver(ws),
      });
    } catch (err) {
      if (err instanceof CloneError) throw new InitFailure("clone_failed", err.message);
      throw err;
    }
    this.child = null;
    this.log.info("repository cloned", { commit: repositoryLog.commit, branch: repositoryLog.branch });
    void this.report({ repositoryLog });

    const wanted = repo.defaultPlaybook;
    if (!wanted || isAbsolute(wanted)) {
      throw new InitFailure("playbook_not_found", `repository.defaultPlaybook must be a path inside the repository (got ${JSON.stringify(wanted ?? "")})`);
    }
    const root = await realpath(ws.project);
    const target = resolve(root, wanted);
    let real: string | null = null;
    try {
      real = await realpath(target);
    } catch {
      real = null;
    }
    const inside = (p: string) => p === root || p.startsWith(root + sep);
    const st = real ? await stat(real).catch(() => null) : null;
    if (!real || !st || !st.isFile() || !inside(real)) {
      const where = `${displayBranch(repositoryLog.branch)}commit ${repositoryLog.commit.slice(0, 12)}`;
      throw new InitFailure(
        "playbook_not_found",
        `repository.defaultPlaybook ${JSON.stringify(wanted)} is not a file in the repository (${where})` +
          (await suggestPlaybooks(root)),
      );
    }
    return relative(root, real);
  }

  private async runAnsible(
    ws: Workspace,
    baseEnv: NodeJS.ProcessEnv,
    args: string[],
    timings: ExecutionResult["timings"],
  ): Promise<Omit<ExecutionResult, "timings">> {
    const hostKeyOff = (this.opts.hostKeyChecking ?? "off") === "off";
    const sshArgs = [baseEnv.ANSIBLE_SSH_ARGS || "-C -o ControlMaster=auto -o ControlPersist=60s"];
    if (hostKeyOff) sshArgs.push("-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR");
    else if (this.opts.knownHosts) sshArgs.push(`-o UserKnownHostsFile=${this.opts.knownHosts}`);
    const callbackDir = this.callbackDir;
    const env: NodeJS.ProcessEnv = {
      ...baseEnv,
      [TRACKING_ENV]: this.trackingId,
      ANSIBLE_STDOUT_CALLBACK: "runner_events",
      ANSIBLE_CALLBACK_PLUGINS: baseEnv.ANSIBLE_CALLBACK_PLUGINS ? `${callbackDir}:${baseEnv.ANSIBLE_CALLBACK_PLUGINS}` : callbackDir,
      RUNNER_EVENTS_FD: "3",
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_FORCE_COLOR: "0",
      ANSIBLE_RETRY_FILES_ENABLED: "0",
      ANSIBLE_HOST_KEY_CHECKING: hostKeyOff ? "False" : "True",
      ANSIBLE_SSH_ARGS: sshArgs.join(" "),
      ANSIBLE_SSH_CONTROL_PATH_DIR: ws.cp,
      ANSIBLE_PERSISTENT_CONTROL_PATH_DIR: ws.cp,
      ANSIBLE_LOCAL_TEMP: ws.tmp,
      // Python's temp files of the controller and of modules run with connection local (AnsiballZ
      // payloads a kill would leave behind) go into the workspace and disappear with it.
      TMPDIR: ws.tmp,
      PYTHONUNBUFFERED: "1",
      PYTHONIOENCODING: "utf-8",
    };
    delete env.ANSIBLE_STDOUT_CALLBACK_OVERRIDE;
    const cmd = this.opts.ansiblePlaybook ?? "ansible-playbook";
    this.log.debug("starting ansible-playbook", { args: args.join(" ") });

    const child = this.spawn(cmd, args, { cwd: ws.project, env, stdio: ["ignore", "pipe", "pipe", "pipe"] });
    const spawnedAt = performance.now();
    timings.leaseToSpawnMs = spawnedAt - this.receivedAt;
    this.ansible = child;
    this.child = child;
    this._phase = "running";
    // A stop that came while we were preparing reaches ansible-playbook now.
    if (this.requested?.kind === "stop") this.interruptAnsible();
    if (this.requested && this.requested.kind !== "stop") signalGroup(child.pid, "SIGKILL");

    const eventsDone = this.readEvents(child.stdio[3] as NodeJS.ReadableStream, timings);
    const stdoutDone = this.readOutput(child.stdout!, "stdout");
    const stderrDone = this.readOutput(child.stderr!, "stderr");

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
    for (const s of [child.stdout, child.stderr, child.stdio[3]]) (s as NodeJS.ReadableStream & { destroy?: () => void })?.destroy?.();
    this.log.debug("ansible-playbook exited", { code: exit.code, signal: exit.signal });
    return this.outcome(exit.code, exit.signal, ws);
  }

  private outcome(code: number | null, signal: NodeJS.Signals | null, ws: Workspace): Omit<ExecutionResult, "timings"> {
    const exitCode = code;
    if (!this.started) {
      if (code === 0) return { status: "SUCCESS", exitCode };
      return { status: "INIT_FAILURE", reason: "playbook_invalid", detail: this.ansibleError(ws) || `ansible-playbook exited with ${code ?? signal} before the playbook started`, exitCode };
    }
    const hostStats = this.stats ?? undefined;
    const failedHosts = this.stats
      ? Object.entries(this.stats).filter(([, s]) => s.failed > 0 || s.unreachable > 0).map(([h]) => h).sort()
      : [...this.failedSeen].sort();
    if (code === 0) return { status: "SUCCESS", exitCode, hostStats, failedHosts };
    const unreachable = hostStats ? Object.entries(hostStats).filter(([, s]) => s.unreachable > 0).map(([h]) => h) : [];
    const failed = failedHosts.filter((h) => !unreachable.includes(h));
    let reason = "ansible_error";
    if (code === 2) reason = "playbook_failed";
    else if (code === 4) reason = "hosts_unreachable";
    else if (signal) reason = "ansible_killed";
    const parts: string[] = [];
    if (failed.length) parts.push(`failed on ${failed.join(", ")}`);
    if (unreachable.length) parts.push(`unreachable: ${unreachable.join(", ")}`);
    if (signal) parts.push(`ansible-playbook was killed by ${signal}, not by Runner (did the machine run out of memory?)`);
    else if (!parts.length) parts.push(this.ansibleError(ws) || `ansible-playbook exited with ${code}`);
    return { status: "FAILURE", reason, detail: parts.join("; "), exitCode, hostStats, failedHosts };
  }

  /** Ansible's own error message (ERROR! …), workspace paths made relative to the project. */
  private ansibleError(ws: Workspace): string {
    const text = this.stderrTail.split(ws.project + sep).join("").split(ws.dir).join("<workspace>");
    const i = text.search(/ERROR!|\[ERROR\]/);
    const msg = (i >= 0 ? text.slice(i) : text).trim();
    return msg.length > 2000 ? msg.slice(0, 2000) + " …" : msg;
  }

  private readEvents(stream: NodeJS.ReadableStream, timings: ExecutionResult["timings"]): Promise<void> {
    const splitter = new LineSplitter((lines) => {
      for (const line of lines) {
        if (!line) continue;
        const e = parsePluginLine(line);
        if (!e) {
          this.emit(verboseEvent([line], "events"));
          continue;
        }
        this.onPluginEvent(e, timings);
        this.emit(e);
      }
    });
    return new Promise((res) => {
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => splitter.push(d));
      stream.on("error", () => res());
      stream.on("close", () => {
        splitter.end();
        res();
      });
    });
  }

  private onPluginEvent(e: EventInput, timings: ExecutionResult["timings"]): void {
    switch (e.event_type) {
      case "playbook_on_start":
        if (!this.started) {
          this.started = true;
          timings.leaseToStartMs = performance.now() - this.receivedAt;
          this.log.info("playbook started");
          if (!this.requested) void this.report({ status: "RUNNING" });
        }
        break;
      case "playbook_on_stats": {
        const hosts = (e.data as { hosts?: Record<string, HostStats> }).hosts;
        // Host names and counts: protocol fields, never redacted (a short secret must not rename a host).
        if (hosts && typeof hosts === "object") this.stats = hosts;
        break;
      }
      case "runner_on_failed":
        if (e.host && !(e.data as { ignore_errors?: boolean }).ignore_errors) this.failedSeen.add(e.host);
        break;
      case "runner_on_unreachable":
        if (e.host) this.failedSeen.add(e.host);
        break;
    }
  }

  private readOutput(stream: NodeJS.ReadableStream, name: "stdout" | "stderr"): Promise<void> {
    const redact = new StreamRedactor(this.redactor);
    const splitter = new LineSplitter((lines) => {
      const text = lines.join("\n") + "\n";
      if (name === "stderr") this.stderrTail = (this.stderrTail + text).slice(-INIT_ERROR_TAIL);
      this.emit(verboseEvent(lines, name));
    });
    return new Promise((res) => {
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => splitter.push(redact.push(d)));
      stream.on("error", () => res());
      stream.on("close", () => {
        splitter.push(redact.end());
        splitter.end();
        res();
      });
    });
  }

  /** Nothing of the execution survives it: processes (ssh masters included), then files. */
  private async cleanup(): Promise<void> {
    const killed = this.requested && this.requested.kind !== "stop";
    for (const c of new Set([this.ansible, this.child])) {
      if (!c?.pid) continue;
      // Stragglers in the group (a worker, a daemon a local task started) get a moment to end.
      if (killed) signalGroup(c.pid, "SIGKILL");
      else await terminateGroup(c.pid, 1000);
    }
    try {
      const n = await killTracked(this.trackingId, 1000);
      if (n) this.log.debug("ended leftover processes", { count: n });
      // Whatever escaped the tracking (a cleared environment, a new session) is still the slot's user.
      const m = this.iso.uid !== undefined ? await killByUid(this.iso.uid) : 0;
      if (m) this.log.warn("killed processes of the run that had left its process group and tracking", { count: m });
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

function displayBranch(branch: string | null): string {
  return branch ? `branch ${branch}, ` : "";
}

async function suggestPlaybooks(root: string): Promise<string> {
  const { readdir } = await import("node:fs/promises");
  const names = (await readdir(root).catch(() => [] as string[])).filter((n) => /\.ya?ml$/i.test(n)).sort().slice(0, 10);
  return names.length ? `; playbooks at the top level: ${names.join(", ")}` : "; there is no .yml file at the top level";
}
