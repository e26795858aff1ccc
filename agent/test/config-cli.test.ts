// Settings precedence and validation, the config file, the CLI's help and usage errors, log lines.
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";
import { ConfigError, defaultConfigPath, resolveSettings, writeConfigFile } from "../src/config.ts";
import { createLogger } from "../src/log.ts";

const dir = mkdtempSync(join(tmpdir(), "rnr-cfg-"));
chmodSync(dir, 0o711); // a root agent's slot users pass through to their workspaces
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), env }, out, err, text: () => out.join("") + err.join("") };
}

describe("settings", () => {
  it("takes a flag over the environment over the file over the default", () => {
    const file = { concurrency: 3, workDir: "/from/file", logFormat: "json" };
    const env = { RUNNER_CONCURRENCY: "5", RUNNER_WORK_DIR: "/from/env" };
    const s = resolveSettings(["concurrency", "workDir", "logFormat", "logLevel"], { concurrency: "7" }, env, file);
    expect(s.concurrency).toBe(7);
    expect(s.workDir).toBe("/from/env");
    expect(s.logFormat).toBe("json");
    expect(s.logLevel).toBe("info");
    expect(s.sources).toEqual({ concurrency: "flag", workDir: "env", logFormat: "file", logLevel: "default" });
  });

  it("names every bad value and where it came from, hiding secrets", () => {
    let err: ConfigError | undefined;
    try {
      resolveSettings(["concurrency", "url", "logFormat", "token"], { concurrency: "0" }, { RUNNER_URL: "ftp://x", RUNNER_TOKEN: " " }, { logFormat: "xml" });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toEqual([
      '--concurrency must be a whole number from 1 to 64 (got "0")',
      'RUNNER_URL must be an http:// or https:// URL (got "ftp://x")',
      '"logFormat" in the config file must be one of text, json (got "xml")',
      "RUNNER_TOKEN must be a non-empty text (got (hidden))",
    ]);
  });

  it("defaults the config file to the XDG config directory", () => {
    expect(defaultConfigPath({ XDG_CONFIG_HOME: "/xdg" })).toBe("/xdg/runner-agent/config.json");
    expect(defaultConfigPath({})).toMatch(/\/\.config\/runner-agent\/config\.json$/);
  });

  it("writes the config file 0600 in a 0700 directory", async () => {
    const file = join(dir, "nested", "agent.json");
    await writeConfigFile(file, { url: "https://x", credential: "rac_secret" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "nested")).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: "https://x", credential: "rac_secret" });
  });
});

describe("runner-agent command", () => {
  it("explains itself with --help: commands, environment variables, exit codes", async () => {
    const c = io();
    expect(await main(["--help"], c.io)).toBe(0);
    const help = c.text();
    expect(help).toContain("register [options]");
    expect(help).toContain("run [options]");
    expect(help).toContain("RUNNER_*");
    expect(help).toMatch(/Exit codes:[\s\S]*3 {2}the API rejected the agent/);
    const r = io();
    expect(await main(["run", "--help"], r.io)).toBe(0);
    for (const flag of ["--concurrency", "RUNNER_CONCURRENCY", "--log-format", "--shutdown-grace", "--work-dir", "--config"]) expect(r.text()).toContain(flag);
    const g = io();
    expect(await main(["register", "--help"], g.io)).toBe(0);
    for (const flag of ["--url", "--token", "--operator-token", "--name", "--location", "RUNNER_TOKEN"]) expect(g.text()).toContain(flag);
  });

  it("prints the version", async () => {
    const c = io();
    expect(await main(["--version"], c.io)).toBe(0);
    expect(c.text().trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("exits 2 on a usage error or bad settings, naming the problem", async () => {
    const a = io();
    expect(await main(["frobnicate"], a.io)).toBe(2);
    expect(a.text()).toContain("unknown command 'frobnicate'");
    const b = io({ RUNNER_CONCURRENCY: "many" });
    expect(await main(["run", "--config", join(dir, "none.json")], b.io)).toBe(2);
    expect(b.text()).toContain('RUNNER_CONCURRENCY must be a whole number from 1 to 64 (got "many")');
    const c = io();
    expect(await main(["run", "--config", join(dir, "none.json")], c.io)).toBe(2);
    expect(c.text()).toMatch(/no config file at .*none\.json: register the agent first/);
    const d = io();
    expect(await main(["register", "--config", join(dir, "r.json")], d.io)).toBe(2);
    expect(d.text()).toContain("--url (or RUNNER_URL) is required");
    expect(d.text()).toContain("--token (or RUNNER_TOKEN) is required");
  });

  it("refuses to overwrite a registration without --force", async () => {
    const file = join(dir, "registered.json");
    writeFileSync(file, JSON.stringify({ url: "https://x", agentId: "a1", credential: "rac_x" }), { mode: 0o600 });
    const c = io();
    expect(await main(["register", "--config", file, "--url", "https://x", "--token", "rrt_x"], c.io)).toBe(2);
    expect(c.text()).toContain("already holds a registration (agent a1): use --force");
  });

  it("exits 2 when ansible-playbook is missing (saying what to install) or the work directory is unusable", async () => {
    const file = join(dir, "ok.json");
    writeFileSync(file, JSON.stringify({ url: "http://127.0.0.1:9", agentId: "a1", credential: "rac_x" }), { mode: 0o600 });
    const c = io({ RUNNER_ANSIBLE_PLAYBOOK: "/nonexistent/ansible-playbook" });
    expect(await main(["run", "--config", file, "--state-dir", join(dir, "state-ok")], c.io)).toBe(2);
    expect(c.text()).toContain("install ansible-core >= 2.14");
    const blocked = join(dir, "a-file");
    writeFileSync(blocked, "");
    const w = io();
    expect(await main(["run", "--config", file, "--work-dir", join(blocked, "work"), "--state-dir", join(dir, "state-blocked")], w.io)).toBe(2);
    expect(w.text()).toMatch(/--work-dir .*a-file\/work cannot hold workspaces: ENOTDIR/);
  });
});

describe("log lines", () => {
  it("writes one line per event, as text or JSON", () => {
    const lines: string[] = [];
    const text = createLogger({ write: (l) => lines.push(l), now: () => new Date(0) }).child({ executionId: "e1" });
    text.info("two\nlines", { n: 1, s: "has space" });
    expect(lines).toEqual(['1970-01-01T00:00:00.000Z INFO  two\\nlines executionId=e1 n=1 s="has space"']);
    const json: string[] = [];
    const j = createLogger({ format: "json", write: (l) => json.push(l), now: () => new Date(0), level: "warn" });
    j.info("dropped");
    j.error("boom", { error: new Error("why") });
    expect(json.map((l) => JSON.parse(l))).toEqual([{ time: "1970-01-01T00:00:00.000Z", level: "error", msg: "boom", error: "why" }]);
  });
});

/** A stand-in for the API on 127.0.0.1: `answer` decides each reply; every request is recorded. */
async function fakeApi(answer: (path: string, n: number, body: unknown) => { status: number; body?: unknown }) {
  const calls: { path: string; at: number; auth: string | undefined; body: unknown }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = "";
    req.on("data", (d) => (text += d));
    req.on("end", () => {
      const body = text ? JSON.parse(text) : null;
      const path = req.url ?? "";
      calls.push({ path, at: Date.now(), auth: req.headers.authorization, body });
      const a = answer(path, calls.filter((c) => c.path === path).length, body);
      res.writeHead(a.status, { "content-type": a.status >= 400 ? "application/problem+json" : "application/json" });
      res.end(a.body === undefined ? "" : JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, calls, close: () => new Promise((r) => server.close(r)) };
}

const REGISTERED = {
  agentId: "ag-1",
  credential: "rac_ag-1_s3cret",
  accountAlias: "acme",
  location: null,
  shared: false,
  leaseTtlMs: 30000,
  heartbeatIntervalMs: 5000,
  pollWaitMs: 25000,
};

describe("runner-agent register (against a stand-in API)", () => {
  it("saves the credential at the XDG default path: file 0600, directory 0700; retries a 503 first", async () => {
    const api = await fakeApi((_path, n) => (n === 1 ? { status: 503, body: { title: "busy" } } : { status: 200, body: REGISTERED }));
    const xdg = join(dir, "xdg");
    const c = io({ XDG_CONFIG_HOME: xdg, RUNNER_TOKEN: "rrt_from_env" });
    try {
      expect(await main(["register", "--url", api.url, "--name", "b1"], c.io)).toBe(0);
    } finally {
      await api.close();
    }
    const file = join(xdg, "runner-agent", "config.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(xdg, "runner-agent")).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ url: api.url, agentId: "ag-1", credential: REGISTERED.credential, name: "b1" });
    expect(api.calls.map((x) => x.path)).toEqual(["/agent/register", "/agent/register"]);
    expect(api.calls[1]!.body).toMatchObject({ token: "rrt_from_env", name: "b1" });
    expect(c.text()).toContain("registration failed; retrying");
    expect(c.text()).not.toContain(REGISTERED.credential);
    expect(c.text()).not.toContain("rrt_from_env");
  });

  it("prints configuration problems as one JSON object when JSON logs are asked for", async () => {
    const c = io({ RUNNER_LOG_FORMAT: "json", RUNNER_CONCURRENCY: "0" });
    expect(await main(["run", "--config", join(dir, "none.json")], c.io)).toBe(2);
    const lines = c.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    const rec = JSON.parse(lines[0]!);
    expect(rec).toMatchObject({ level: "error", msg: "invalid configuration" });
    expect(rec.problems).toContain('RUNNER_CONCURRENCY must be a whole number from 1 to 64 (got "0")');
  });
});

describe("runner-agent run (against a stand-in API)", () => {
  it("backs off on 5xx with growing, jittered delays, then exits 3 at once on 401 (no retry storm)", async () => {
    const api = await fakeApi((path, n) =>
      path === "/agent/lease" && n <= 3
        ? { status: 503, body: { title: "down for maintenance" } }
        : { status: 401, body: { title: "Unauthorized", detail: "credential revoked" } },
    );
    const file = join(dir, "run-backoff.json");
    writeFileSync(file, JSON.stringify({ url: api.url, agentId: "ag-1", credential: "rac_ag-1_s3cret", pollWaitMs: 1000 }), { mode: 0o600 });
    const c = io();
    let code: number;
    try {
      code = await main(["run", "--config", file, "--work-dir", join(dir, "work"), "--state-dir", join(dir, "state"), "--log-format", "json"], c.io);
    } finally {
      await api.close();
    }
    expect(code).toBe(3);
    expect(api.calls.map((x) => x.path)).toEqual(["/agent/lease", "/agent/lease", "/agent/lease", "/agent/lease"]);
    expect(api.calls.every((x) => x.auth === "Bearer rac_ag-1_s3cret")).toBe(true);
    // Backoff 0.5 s doubling, each delay at least half its step: ≥ 250, ≥ 500, ≥ 1000 ms.
    const gaps = api.calls.slice(1).map((x, i) => x.at - api.calls[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(240);
    expect(gaps[1]).toBeGreaterThanOrEqual(490);
    expect(gaps[2]).toBeGreaterThanOrEqual(990);
    const records = c
      .text()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(records.filter((r) => r.msg === "lease request failed; retrying").map((r) => r.retryInMs)).toHaveLength(3);
    expect(records.some((r) => r.level === "error" && /credential \(revoked or unknown\): register the agent again/.test(r.msg))).toBe(true);
  });
});
