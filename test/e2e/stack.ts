// The real stack for end-to-end tests and benchmarks: the API fixture (wrangler dev on a free
// port with its own state and secrets) plus a shared-pool runner-agent registered against it.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync } from "node:fs";
import { basename, join } from "node:path";
import { processesWithEnv } from "../fixtures/processes.ts";
import { startStack, type CallResult, type StackHandle } from "../fixtures/stack.ts";
// @ts-expect-error plain ESM helpers shared with npm start
import { killGroup } from "../../scripts/lib/wrangler-dev.mjs";

const AGENT_BIN = join(import.meta.dirname, "..", "..", "agent", "bin", "runner-agent.mjs");

export const TERMINAL = ["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"];
export const isTerminal = (e: { status?: string } | undefined) => TERMINAL.includes(e?.status ?? "");
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const b64 = (s: string) => Buffer.from(s).toString("base64");

export class Stack {
  api!: StackHandle;
  private agent?: ChildProcess;
  agentOutput = "";

  get url() {
    return this.api.url;
  }
  get dir() {
    return this.api.dir;
  }
  get agentConfig() {
    return join(this.api.dir, "agent.json");
  }

  async start(opts: { agent?: boolean; vars?: Record<string, string> } = {}) {
    this.api = await startStack({ vars: opts.vars });
    if (opts.agent !== false) {
      await this.registerAgent(this.agentConfig, "e2e-agent");
      this.startAgent();
    }
    return this;
  }

  token(accounts: string[] | "*", role: "admin" | "user" | "viewer" = "admin") {
    return this.api.token(accounts, role);
  }
  call(method: string, path: string, token: string | null, body?: unknown): Promise<CallResult> {
    return this.api.call(method, path, token, body);
  }
  restartApi() {
    return this.api.restartApi();
  }

  /** Registers a shared-pool agent (operator token) into `config`. */
  async registerAgent(config: string, name: string) {
    // Secrets and the config path by environment: never on a command line.
    const r = await run(process.execPath, [AGENT_BIN, "register", "--url", this.url, "--name", name], {
      RUNNER_OPERATOR_TOKEN: await this.token("*"),
      RUNNER_CONFIG: config,
    });
    if (r.code !== 0) throw new Error(`agent register failed: ${r.out}`);
  }

  /** Starts `runner-agent run` in its own process group; more agents can be started with other configs. */
  startAgent(config = this.agentConfig, extraArgs: string[] = []): ChildProcess {
    // Workspaces under this stack's folder, so a test can tell its own processes from any other's.
    const workDir = join(this.api.dir, `work-${basename(config, ".json")}`);
    // The agent runs each execution as a slot user, who must pass through to its workspace (0711: not list).
    chmodSync(this.api.dir, 0o711);
    // The config path by environment, never on the command line (where any process could read it).
    const child = spawn(process.execPath, [AGENT_BIN, "run", "--concurrency", "4", "--work-dir", workDir, ...extraArgs], {
      // Its state directory (what it holds) inside this stack's folder, removed with it.
      env: { ...process.env, RUNNER_CONFIG: config, RUNNER_STATE_DIR: join(this.api.dir, `state-${basename(config, ".json")}`) },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (d: Buffer) => (this.agentOutput = (this.agentOutput + d).slice(-50_000));
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    if (config === this.agentConfig) this.agent = child;
    return child;
  }

  agentPid() {
    return this.agent?.pid ?? 0;
  }

  /** Live processes started for executions by the agent with pid `agentPid` (see agent/src/process-group.ts). */
  trackedProcesses(agentPid = this.agentPid()) {
    return processesWithEnv("RUNNER_AGENT_TRACKING_ID", `${agentPid}:`);
  }

  /** SIGKILL to the agent process alone (its ansible children are in their own groups). */
  killAgentHard() {
    if (this.agent?.pid) process.kill(this.agent.pid, "SIGKILL");
  }

  async stopAgent(child = this.agent) {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    killGroup(child, "SIGTERM");
    await Promise.race([exited, sleep(15_000)]);
    killGroup(child, "SIGKILL");
  }

  async stop() {
    await this.stopAgent();
    await this.api?.stop();
  }

  /** Polls an execution until `done(execution)` holds; answers the last execution seen. */
  async waitFor(alias: string, jobId: string, executionId: string, token: string, done: (e: any) => boolean, timeoutMs = 90_000) {
    const until = Date.now() + timeoutMs;
    let last: any;
    while (Date.now() < until) {
      const r = await this.call("GET", `/jobs/${alias}/${jobId}/executions/${executionId}`, token).catch(() => undefined);
      if (r?.status === 200) {
        last = r.json;
        if (done(last)) return last;
      }
      await sleep(250);
    }
    throw new Error(`timed out waiting; last seen: ${JSON.stringify(last)}\nagent output:\n${this.agentOutput.slice(-4000)}`);
  }
}

export function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: env ? { ...process.env, ...env } : process.env });
    let out = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (out += d));
    c.on("close", (code) => resolve({ code, out }));
  });
}
