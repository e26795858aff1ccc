// The real stack for end-to-end tests: wrangler dev (own persist dir, free port), a shared-pool
// runner-agent registered against it, and helpers to drive the public API over HTTP.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importJWK, SignJWT, type JWK } from "jose";
// @ts-expect-error plain ESM helpers shared with npm start
import { ensureDevVars } from "../../scripts/lib/dev-vars.mjs";
// @ts-expect-error plain ESM helpers shared with npm start
import { applyLocalMigrations, freePort, killGroup, startWranglerDev } from "../../scripts/lib/wrangler-dev.mjs";

const ROOT = join(import.meta.dirname, "..", "..");
const AGENT_BIN = join(ROOT, "agent", "bin", "runner-agent.mjs");

export interface Api {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export class Stack {
  url = "";
  port = 0;
  readonly dir = mkdtempSync(join(tmpdir(), "runner-e2e-"));
  readonly persistTo = join(this.dir, "state");
  private api?: { stop(): Promise<void>; output(): string };
  private agent?: ChildProcess;
  agentOutput = "";
  private vars: Record<string, string> = {};

  async start(opts: { agent?: boolean; vars?: Record<string, string> } = {}) {
    this.vars = await ensureDevVars(join(ROOT, ".dev.vars"));
    applyLocalMigrations({ cwd: ROOT, persistTo: this.persistTo });
    this.port = await freePort();
    await this.startApi(opts.vars);
    if (opts.agent !== false) {
      await this.registerAgent();
      this.startAgent();
    }
    return this;
  }

  private extraVars?: Record<string, string>;
  async startApi(vars = this.extraVars) {
    this.extraVars = vars;
    this.api = await startWranglerDev({ port: this.port, persistTo: this.persistTo, cwd: ROOT, vars });
    this.url = `http://127.0.0.1:${this.port}`;
  }
  async stopApi() {
    await this.api?.stop();
    this.api = undefined;
  }
  async restartApi() {
    await this.stopApi();
    await this.startApi();
  }

  async token(accounts: string[] | "*", role = "admin") {
    const jwk = JSON.parse(this.vars.JWT_PRIVATE_KEY!) as JWK;
    return new SignJWT({ accounts, role })
      .setProtectedHeader({ alg: "ES256", kid: jwk.kid })
      .setSubject("e2e")
      .setIssuer(this.vars.RUNNER_ISSUER || "runner")
      .setIssuedAt()
      .setExpirationTime("2h")
      .sign(await importJWK(jwk, "ES256"));
  }

  get agentConfig() {
    return join(this.dir, "agent.json");
  }

  async registerAgent() {
    const r = await run(process.execPath, [AGENT_BIN, "register", "--url", this.url, "--operator-token", await this.token("*"), "--name", "e2e-agent", "--config", this.agentConfig]);
    if (r.code !== 0) throw new Error(`agent register failed: ${r.out}`);
  }

  startAgent(extraArgs: string[] = []) {
    this.agent = spawn(process.execPath, [AGENT_BIN, "run", "--config", this.agentConfig, "--concurrency", "4", ...extraArgs], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env },
    });
    const keep = (d: Buffer) => (this.agentOutput = (this.agentOutput + d).slice(-50_000));
    this.agent.stdout!.on("data", keep);
    this.agent.stderr!.on("data", keep);
  }

  agentPid() {
    return this.agent?.pid ?? 0;
  }

  /** SIGKILL to the agent process alone (its ansible children are in their own groups). */
  killAgentHard() {
    if (this.agent?.pid) process.kill(this.agent.pid, "SIGKILL");
  }

  async stopAgent() {
    const a = this.agent;
    if (!a || a.exitCode !== null || a.signalCode !== null) return;
    killGroup(a, "SIGTERM");
    await Promise.race([new Promise((r) => a.once("exit", r)), sleep(15_000)]);
    killGroup(a, "SIGKILL");
  }

  async stop() {
    await this.stopAgent();
    await this.stopApi();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async call(method: string, path: string, token: string | null, body?: unknown): Promise<Api> {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(this.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
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

export const TERMINAL = ["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"];
export const isTerminal = (e: any) => TERMINAL.includes(e?.status);

export function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (out += d));
    c.on("close", (code) => resolve({ code, out }));
  });
}

export const b64 = (s: string) => Buffer.from(s).toString("base64");
