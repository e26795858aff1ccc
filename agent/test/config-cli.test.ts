// Settings precedence and validation, the config file, the CLI's help and usage errors, log lines.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";
import { ConfigError, defaultConfigPath, resolveSettings, writeConfigFile } from "../src/config.ts";
import { createLogger } from "../src/log.ts";

const dir = mkdtempSync(join(tmpdir(), "rnr-cfg-"));
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

  it("exits 2 when ansible-playbook is missing, saying what to install", async () => {
    const file = join(dir, "ok.json");
    writeFileSync(file, JSON.stringify({ url: "http://127.0.0.1:9", agentId: "a1", credential: "rac_x" }), { mode: 0o600 });
    const c = io({ RUNNER_ANSIBLE_PLAYBOOK: "/nonexistent/ansible-playbook" });
    expect(await main(["run", "--config", file], c.io)).toBe(2);
    expect(c.text()).toContain("install ansible-core >= 2.14");
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
