// End-to-end: the `runner` CLI against the real stack (wrangler dev + a root agent with the
// sandbox), the agent and the CLI installed with `npm install -g` from the tarballs the API serves,
// and both metrics endpoints scraped and parsed as Prometheus text.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error plain ESM helpers shared with npm test
import { buildDownloads } from "../../scripts/lib/downloads.mjs";
// @ts-expect-error plain ESM helpers shared with npm start
import { freePort, killGroup } from "../../scripts/lib/wrangler-dev.mjs";
import { sleep, Stack } from "./stack";

const A = "e2ecli";
const ROOT = join(import.meta.dirname, "..", "..");
const RUNNER = join(ROOT, "cli", "bin", "runner.mjs");
const PASSWORD = "a long passphrase for the cli";
const USERNAME = "e2ecli-ci";
const LOCAL = "ansible_connection=local ansible_python_interpreter=/usr/bin/python3";
const PLAY = (tasks: string) => `- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}`;

let stack: Stack;
let tmp: string;
let config: string;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<Ran> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false", ...env }, cwd: tmp });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    c.on("close", (code) => (clearTimeout(t), resolve({ code, stdout, stderr })));
  });
}

/** The CLI from the workspace, with its logins kept under this test's folder. */
const runner = (...args: string[]) => exec(process.execPath, [RUNNER, ...args], { XDG_CONFIG_HOME: config, RUNNER_PASSWORD: PASSWORD });

type Family = { name: string; type: string; metrics: { value: string; labels?: Record<string, string> }[] };
const families = (text: string) => new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
const sample = (f: Family | undefined, labels: Record<string, string> = {}) =>
  Number(f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? NaN);

beforeAll(async () => {
  buildDownloads({ log: () => {} });
  tmp = mkdtempSync(join(tmpdir(), "rnr-cli-"));
  config = join(tmp, "config");
  stack = await new Stack().start();
  const sa = await stack.call("POST", `/serviceAccounts/${A}`, await stack.token([A]), { alias: "ci", username: USERNAME, password: PASSWORD, role: "user" });
  expect(sa.status, sa.text).toBe(200);
  writeFileSync(join(tmp, "site.yml"), PLAY("    - name: say hello\n      ansible.builtin.debug:\n        msg: hello from the cli\n"));
  writeFileSync(join(tmp, "broken.yml"), PLAY("    - name: this fails\n      ansible.builtin.fail:\n        msg: failing on purpose\n"));
  writeFileSync(join(tmp, "slow.yml"), PLAY("    - name: wait\n      ansible.builtin.command: sleep 60\n"));
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("the runner CLI against the real stack", () => {
  let siteId: string;

  it("logs in with the password from RUNNER_PASSWORD and keeps the token 0600; a wrong one shows the API's detail", async () => {
    const bad = await exec(process.execPath, [RUNNER, "login", "--url", stack.url, "--username", USERNAME], {
      XDG_CONFIG_HOME: config,
      RUNNER_PASSWORD: "not the password at all",
    });
    expect(bad.code, bad.stderr).toBe(1);
    expect(bad.stderr).toMatch(/runner: .*\(401/);

    const r = await runner("login", "--url", stack.url, "--username", USERNAME);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`account ${A}, role user`);
    const file = join(config, "runner", "default.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(config, "runner")).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ url: stack.url, account: A, username: USERNAME });
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  });

  it("creates a job from a local playbook file (sent inline) and lists it, as a table and as JSON", async () => {
    const r = await runner("jobs", "create", "--name", "site", "--playbook", "site.yml", "--host", `localhost ${LOCAL}`, "--json");
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout);
    siteId = job.id;
    expect(job).toMatchObject({ name: "site", accountAlias: A, hosts: [{ id: "localhost", hostVars: { ansible_connection: "local" } }] });
    expect(Buffer.from(job.playbook, "base64").toString()).toContain("hello from the cli");

    const table = await runner("jobs", "ls");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+PLAYBOOK/);
    expect(table.stdout).toContain(siteId);
    expect(table.stdout).not.toContain("\x1b["); // no colours off a terminal
    const json = JSON.parse((await runner("jobs", "ls", "--json")).stdout);
    expect(json.results.map((j: { id: string }) => j.id)).toContain(siteId);
  });

  it("shows the problem's detail and every field it names when the API refuses", async () => {
    const r = await runner("jobs", "create", "--name", "nohosts", "--playbook", "site.yml");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\(400 Bad Request\)/);
    expect(r.stderr).toMatch(/^ {2}hosts: /m);
    const missing = await runner("jobs", "create", "--playbook", "nope.yml", "--host", "h");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("nope.yml: no such file");
  });

  it("start --follow streams the log and exits 0 on SUCCESS (the job named by its name)", async () => {
    const r = await runner("start", "site", "--follow");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("TASK [say hello]");
    expect(r.stdout).toContain("hello from the cli");
    expect(r.stdout).toMatch(/PLAY RECAP/);
    expect(r.stderr).toMatch(/SUCCESS/);
  });

  it("start --follow exits 3 when the playbook fails, and --json gives the final execution on stdout", async () => {
    const created = JSON.parse(
      (await runner("jobs", "create", "--name", "broken", "--playbook", "broken.yml", "--host", `localhost ${LOCAL}`, "--json")).stdout,
    );
    const r = await runner("start", created.id, "--follow", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(3);
    const e = JSON.parse(r.stdout);
    expect(e).toMatchObject({ status: "FAILURE", job_id: created.id });
    expect(r.stderr).toContain("failing on purpose"); // the log, on stderr with --json
  });

  it("logs -f follows a running execution to its end; logs prints it whole; executions ls filters by status", async () => {
    const started = await runner("start", siteId, "--prop", "greeting=hi", "--prop", "n:=3");
    expect(started.code, started.stderr).toBe(0);
    const executionId = started.stdout.trim();
    expect(executionId).toMatch(/^[\w-]{8,}$/);
    const f = await runner("logs", executionId, "-f");
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toContain("hello from the cli");
    const whole = await runner("logs", executionId);
    expect(whole.code).toBe(0);
    expect(whole.stdout).toContain("PLAY RECAP");

    const ok = JSON.parse((await runner("executions", "ls", "--status", "SUCCESS", "--json")).stdout);
    expect(ok.results.length).toBeGreaterThanOrEqual(2);
    expect(ok.results.every((e: { status: string }) => e.status === "SUCCESS")).toBe(true);
    expect(ok.results.map((e: { execution_id: string }) => e.execution_id)).toContain(executionId);
    const failed = await runner("executions", "ls", "--status", "FAILURE");
    expect(failed.stdout).toMatch(/^EXECUTION\s+JOB\s+STATUS/);
    expect(failed.stdout).toContain("FAILURE");
    expect(failed.stdout).not.toContain(executionId);
  });

  it("kill ends a running execution, and following it then exits 6 (KILLED)", async () => {
    const job = JSON.parse((await runner("jobs", "create", "--name", "slow", "--playbook", "slow.yml", "--host", `localhost ${LOCAL}`, "--json")).stdout);
    const executionId = (await runner("start", "slow")).stdout.trim();
    await stack.waitFor(A, job.id, executionId, await stack.token([A]), (e) => e.status === "RUNNING");
    const k = await runner("kill", executionId);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stdout).toMatch(/KILLING|KILLED/);
    const f = await runner("logs", executionId, "--follow", "--job", job.id);
    expect(f.code, f.stdout + f.stderr).toBe(6);
  });

  it("edits, shows and removes a job; lists the agents", async () => {
    const e = await runner("jobs", "edit", "broken", "--name", "mended", "--tags", "a,b", "--forks", "20");
    expect(e.code, e.stderr).toBe(0);
    const shown = JSON.parse((await runner("jobs", "show", "mended", "--json")).stdout);
    expect(shown).toMatchObject({ name: "mended", playbookTags: ["a", "b"], forks: 20 });
    expect((await runner("jobs", "edit", "mended", "--forks", "default")).code).toBe(0);
    expect(JSON.parse((await runner("jobs", "show", "mended", "--json")).stdout).forks).toBeNull();
    const bad = await runner("jobs", "edit", "mended", "--forks", "1000");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("forks");
    expect((await runner("jobs", "show", "mended")).stdout).toContain("name: mended");
    const rm = await runner("jobs", "rm", "mended");
    expect(rm.code, rm.stderr).toBe(0);
    expect((await runner("jobs", "show", shown.id)).code).toBe(1);

    const agents = await runner("agents", "ls", "--json");
    expect(agents.code, agents.stderr).toBe(0);
    expect(JSON.parse(agents.stdout)).toMatchObject({ page: 0, results: [] }); // the stack's agent is the shared pool's
  });
});

describe("installed from the API: npm install -g of the served tarballs", () => {
  let prefix: string;
  let agent: ChildProcess | undefined;

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      killGroup(agent, "SIGTERM");
      await Promise.race([new Promise((r) => agent!.once("exit", r)), sleep(15_000)]);
      killGroup(agent, "SIGKILL");
    }
  });

  it("the registration-token answer's install command installs a working runner-agent (and runner)", async () => {
    const t = await stack.call("POST", `/minions/${A}/tokens`, await stack.token([A]), { name: "installed", location: "installed" });
    expect(t.status, t.text).toBe(200);
    expect(t.json.installCommand).toBe(`npm install -g ${stack.url}/downloads/runner-agent.tgz`);
    expect(t.json.registerCommand).toBe(`RUNNER_TOKEN=${t.json.token} runner-agent register --url ${stack.url}`);
    for (const f of ["runner-agent.tgz", "runner-agent-0.1.0.tgz", "runner-cli.tgz"]) {
      const r = await fetch(`${stack.url}/downloads/${f}`);
      expect(r.status, f).toBe(200);
      expect(r.headers.get("content-type")).toBe("application/gzip");
    }

    prefix = join(tmp, "prefix");
    const [npm, install, global, url] = t.json.installCommand.split(" ");
    const inst = await exec(
      npm,
      [install, global, "--prefix", prefix, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", url, `${stack.url}/downloads/runner-cli.tgz`],
      {},
      300_000,
    );
    expect(inst.code, inst.stdout + inst.stderr).toBe(0);
    const v = await exec(join(prefix, "bin", "runner-agent"), ["--version"]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe("0.1.0");
    const cv = await exec(join(prefix, "bin", "runner"), ["--version"]);
    expect(cv.stdout.trim()).toBe("0.1.0");

    // Register exactly as the answer says (the token by environment), with the config where the service would read it.
    const agentConfig = join(tmp, "installed-agent.json");
    const [assignment, ...rest] = t.json.registerCommand.split(" ");
    const reg = await exec(join(prefix, "bin", rest[0]), rest.slice(1), {
      [assignment.split("=")[0]]: assignment.slice(assignment.indexOf("=") + 1),
      RUNNER_CONFIG: agentConfig,
    });
    expect(reg.code, reg.stdout + reg.stderr).toBe(0);
    expect(JSON.parse(readFileSync(agentConfig, "utf8"))).toMatchObject({ accountAlias: A, location: "installed" });

    // install-service: a unit systemd accepts (when systemd-analyze is here), with the sandbox and the config by environment.
    const unitPath = join(tmp, "runner-agent.service");
    const unit = await exec(join(prefix, "bin", "runner-agent"), ["install-service", "--output", unitPath], { RUNNER_CONFIG: agentConfig });
    expect(unit.code, unit.stderr).toBe(0);
    const text = readFileSync(unitPath, "utf8");
    expect(text).toContain(`Environment=RUNNER_CONFIG=${agentConfig}`);
    expect(text).toMatch(
      /^ExecStart=\/\S+ \S+\/lib\/node_modules\/runner-agent\/bin\/runner-agent\.mjs run --isolation sandbox --state-dir \/var\/lib\/runner-agent$/m,
    );
    expect(text).toContain("Restart=on-failure");
    const analyze = await exec("sh", ["-c", "command -v systemd-analyze"]);
    if (analyze.code === 0) {
      const verify = await exec("systemd-analyze", ["verify", unitPath]);
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    }
  });

  it("the installed agent runs a job in the sandbox and serves its metrics; GET /metrics counts it", async () => {
    const agentConfig = join(tmp, "installed-agent.json");
    const port: number = await freePort();
    const workDir = join(stack.dir, "work-installed");
    mkdirSync(workDir, { recursive: true });
    agent = spawn(
      join(prefix, "bin", "runner-agent"),
      ["run", "--isolation", "sandbox", "--work-dir", workDir, "--state-dir", join(stack.dir, "state-installed"), "--metrics-listen", `127.0.0.1:${port}`],
      {
        env: { ...process.env, RUNNER_CONFIG: agentConfig },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    agent.stdout!.on("data", (d) => (out += d));
    agent.stderr!.on("data", (d) => (out += d));

    const r = await runner("jobs", "create", "--name", "there", "--playbook", "site.yml", "--location", "installed", "--host", `localhost ${LOCAL}`, "--json");
    const job = JSON.parse(r.stdout);
    const run = await runner("start", job.id, "--follow");
    expect(run.code, `${run.stdout}${run.stderr}\nagent:\n${out}`).toBe(0);
    expect(run.stdout).toContain("hello from the cli");
    expect(out).toContain("isolation=sandbox");

    const scraped = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get("content-type")).toContain("text/plain");
    const m = families(await scraped.text());
    expect(sample(m.get("runner_agent_leases_total"))).toBe(1);
    expect(sample(m.get("runner_agent_events_sent_total"))).toBeGreaterThan(3);
    expect(sample(m.get("runner_agent_lease_poll_errors_total"))).toBe(0);
    expect(sample(m.get("runner_agent_running_executions"))).toBe(0);
    expect(sample(m.get("runner_agent_upload_backlog_events"))).toBe(0);
    expect(sample(m.get("runner_agent_last_contact_timestamp_seconds"))).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(m.get("runner_agent_leases_total")!.type).toBe("COUNTER");

    const api = await fetch(`${stack.url}/metrics`, { headers: { authorization: `Bearer ${await stack.token("*", "viewer")}` } });
    expect(api.status).toBe(200);
    const w = families(await api.text());
    expect(sample(w.get("runner_executions"), { status: "SUCCESS" })).toBeGreaterThanOrEqual(3);
    expect(sample(w.get("runner_executions"), { status: "FAILURE" })).toBeGreaterThanOrEqual(1);
    expect(sample(w.get("runner_executions"), { status: "KILLED" })).toBeGreaterThanOrEqual(1);
    expect(sample(w.get("runner_agents"), { account: A, location: "installed", state: "online" })).toBe(1);
    expect(sample(w.get("runner_agents"), { account: "~shared", location: "", state: "online" })).toBe(1);
    expect(sample(w.get("runner_agents_online"))).toBe(2);
    expect(w.get("runner_executions_oldest_pending_age_seconds")).toBeDefined();
    // An account's token may not read them.
    const denied = await fetch(`${stack.url}/metrics`, { headers: { authorization: `Bearer ${await stack.token([A], "admin")}` } });
    expect(denied.status).toBe(403);
  });
});
