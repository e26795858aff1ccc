// The agent against the real API (wrangler dev): registration, the run loop, signals and exit
// codes, hand-back on shutdown, a revoked credential. The agent runs as its real CLI process.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, type Server, type Socket } from "node:net";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";
import { startStack, type StackHandle } from "../../test/fixtures/stack.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import { processesMatching, processesWithEnv, waitUntilGone, type ProcessInfo } from "../../test/fixtures/processes.ts";
import { defaultUidBase, probeIsolation, removeSlotUsers } from "../src/sandbox.ts";
import { b64 } from "./helpers.ts";

const BIN = join(import.meta.dirname, "..", "bin", "runner-agent.mjs");
const A = "acme";
let stack: StackHandle;
let sshd: SshServer;
let admin: string;
let hang: Server;
const hanging: Socket[] = [];

beforeAll(async () => {
  [stack, sshd] = await Promise.all([startStack(), startSshd()]);
  admin = await stack.token([A]);
  hang = createServer((s) => hanging.push(s)); // a "git server" that never answers
  await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
}, 120_000);
afterAll(async () => {
  for (const s of hanging) s.destroy();
  if (hang) await new Promise((r) => hang.close(r));
  await Promise.all([stack?.stop(), sshd?.stop()]);
});

function io() {
  const chunks: string[] = [];
  return {
    io: { out: (t: string) => void chunks.push(t), err: (t: string) => void chunks.push(t), env: {} as NodeJS.ProcessEnv },
    text: () => chunks.join(""),
  };
}

/**
 * Registers an agent into `file` (poll wait shortened so the tests don't sit in 25 s polls). Each
 * test's agent has a location of its own and its jobs carry it, so that a job never goes to the
 * agent of another test (see sshJob).
 */
async function register(file: string, location: string): Promise<Record<string, unknown>> {
  const rrt = await stack.registrationToken(A, { location });
  const c = io();
  const code = await main(["register", "--url", stack.url, "--token", rrt, "--config", file], c.io);
  expect(code, c.text()).toBe(0);
  const data = JSON.parse(readFileSync(file, "utf8"));
  writeFileSync(file, JSON.stringify({ ...data, pollWaitMs: 3000 }), { mode: 0o600 });
  return data;
}

interface RunningAgent {
  child: ChildProcess;
  output(): string;
  exit: Promise<number | null>;
  signal(sig: NodeJS.Signals): void;
}

const workDirOf = (file: string) => join(stack.dir, `work-${basename(file, ".json")}`);

function startAgent(file: string, args: string[] = []): RunningAgent {
  // A work directory per registration: one agent process may use a work directory at a time, and a
  // test's agent may still be exiting when the next test's starts.
  const workDir = workDirOf(file);
  chmodSync(stack.dir, 0o711); // the slot users pass through to their workspaces
  // The state directory (what the agent holds) beside its config, inside the stack's folder.
  const stateDir = file.replace(/\.json$/, ".state");
  const child = spawn(process.execPath, [BIN, "run", "--config", file, "--work-dir", workDir, "--state-dir", stateDir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, output: () => out, exit, signal: (sig) => child.pid && process.kill(child.pid, sig) };
}

function killAll(list: { pid: number }[]): void {
  for (const p of list) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      /* gone meanwhile */
    }
  }
}

/**
 * Starts a run of `job`, waits until `underWay` says it is, SIGKILLs the agent and expects nothing of `run()`
 * to remain. Pass or fail, whatever remains is killed and the execution ended afterwards.
 */
async function expectRunDiesWithAgent(
  agent: RunningAgent,
  run: () => ProcessInfo[],
  job: Record<string, unknown>,
  underWay: () => Promise<void>,
): Promise<void> {
  let ids: { jobId: string; executionId: string } | undefined;
  try {
    ids = await startJob(job);
    await underWay();
    process.kill(agent.child.pid!, "SIGKILL");
    await agent.exit;
    expect(await waitUntilGone(run, 10_000)).toEqual([]);
  } finally {
    agent.child.kill("SIGKILL");
    killAll(run());
    if (ids) await stack.call("POST", `/jobs/${A}/${ids.jobId}/executions/${ids.executionId}/kill`, admin, {});
  }
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function startJob(body: Record<string, unknown>): Promise<{ jobId: string; executionId: string }> {
  const r = await stack.call("POST", `/jobs/${A}?immediate=true`, admin, { name: "agent test", ...body });
  expect(r.status, r.text).toBe(200);
  return { jobId: r.json.id, executionId: r.json.execution.execution_id };
}

async function execution(ids: { jobId: string; executionId: string }) {
  return (await stack.call("GET", `/jobs/${A}/${ids.jobId}/executions/${ids.executionId}`, admin)).json;
}

const untilStatus = (ids: { jobId: string; executionId: string }, statuses: string[], timeoutMs = 60_000) =>
  waitFor(
    `status ${statuses}`,
    async () => {
      const e = await execution(ids);
      return statuses.includes(e?.status) ? e : undefined;
    },
    timeoutMs,
  );

const sleepPlaybook = (seconds: number, tasks = 1) =>
  b64(
    `- hosts: all\n  gather_facts: false\n  tasks:\n` +
      Array.from({ length: tasks }, (_, i) => `    - name: step ${i + 1}\n      ansible.builtin.command: sleep ${seconds}\n`).join(""),
  );
const LOCAL = { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" };
const support = probeIsolation(tmpdir());
const sshJob = (location: string, playbook: string) => ({
  location,
  playbook,
  sshPrivateKey: sshd.clientKey.base64,
  hosts: [{ id: "web1", hostVars: sshd.hostVars() }],
});

describe("register", () => {
  it("exchanges a registration token for a credential kept in a 0600 file", async () => {
    const file = join(stack.dir, "reg.json");
    const rrt = await stack.registrationToken(A, { location: "dc9" });
    const c = io();
    expect(await main(["register", "--url", stack.url, "--token", rrt, "--name", "builder-1", "--config", file], c.io)).toBe(0);
    expect(c.text()).toMatch(/Registered agent builder-1 \(.+\) for account acme, location dc9\./);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const data = JSON.parse(readFileSync(file, "utf8"));
    expect(data).toMatchObject({ url: stack.url, accountAlias: A, shared: false, location: "dc9", name: "builder-1" });
    expect(data.credential).toMatch(/^rac_/);
    expect(c.text()).not.toContain(data.credential);
    const agents = await stack.call("GET", `/minions/${A}`, admin);
    expect(agents.json.results.some((a: { id: string; name: string }) => a.id === data.agentId && a.name === "builder-1")).toBe(true);
  });

  it("exits 3 when the API refuses the token, and registers a shared-pool agent with an operator JWT", async () => {
    const bad = io();
    expect(await main(["register", "--url", stack.url, "--token", "rrt_not-a-real-token", "--config", join(stack.dir, "bad.json")], bad.io)).toBe(3);
    expect(bad.text()).toContain("the API refused the registration token");
    const shared = io();
    const file = join(stack.dir, "shared.json");
    expect(await main(["register", "--url", stack.url, "--operator-token", await stack.token("*"), "--config", file], shared.io)).toBe(0);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ shared: true, accountAlias: null });
    expect(shared.text()).toContain("for the shared pool");
  });
});

describe("runner-agent run", () => {
  it("runs a job, logs one JSON object per line, and exits 0 on SIGTERM when idle", async () => {
    const file = join(stack.dir, "run1.json");
    await register(file, "t1");
    const agent = startAgent(file, ["--log-format", "json"]);
    try {
      const ids = await startJob(
        sshJob("t1", b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: hi from the agent\n")),
      );
      const done = await untilStatus(ids, ["SUCCESS", "FAILURE", "INIT_FAILURE"]);
      expect(done.status).toBe("SUCCESS");
      expect(done.host_stats.web1).toMatchObject({ ok: 1 });
      const log = await stack.call("GET", `/jobs/${A}/${ids.jobId}/executions/${ids.executionId}/log`, admin);
      expect(log.text).toContain("hi from the agent");
    } finally {
      agent.signal("SIGTERM");
    }
    expect(await agent.exit).toBe(0);
    const lines = agent.output().trim().split("\n");
    const records = lines.map((l) => JSON.parse(l));
    expect(records.map((r) => r.msg)).toEqual(
      expect.arrayContaining(["agent started", "execution leased", "playbook started", "execution finished", "agent stopped"]),
    );
    expect(records.every((r) => typeof r.time === "string" && typeof r.level === "string")).toBe(true);
  });

  it("on SIGTERM takes no new work and lets the running execution finish (exit 0)", async () => {
    const file = join(stack.dir, "run2.json");
    await register(file, "t2");
    const agent = startAgent(file, ["--shutdown-grace", "60"]);
    const ids = await startJob(sshJob("t2", sleepPlaybook(1, 3)));
    await untilStatus(ids, ["RUNNING"]);
    agent.signal("SIGTERM");
    const other = await startJob(sshJob("t2", sleepPlaybook(1)));
    expect(await agent.exit).toBe(0);
    expect((await execution(ids)).status).toBe("SUCCESS");
    expect((await execution(other)).status).toBe("PENDING"); // not taken by a stopping agent
    await stack.call("POST", `/jobs/${A}/${other.jobId}/executions/${other.executionId}/kill`, admin, {});
  });

  it("stops the running execution when the grace period runs out (STOPPED, exit 4)", async () => {
    const file = join(stack.dir, "run3.json");
    await register(file, "t3");
    const agent = startAgent(file, ["--shutdown-grace", "0"]);
    const ids = await startJob(sshJob("t3", sleepPlaybook(1, 5)));
    await untilStatus(ids, ["RUNNING"]);
    agent.signal("SIGTERM");
    expect(await agent.exit).toBe(4);
    const e = await execution(ids);
    expect(e.status).toBe("STOPPED");
  });

  it("kills the running execution on a second signal (KILLED, exit 5), leaving no process", async () => {
    const file = join(stack.dir, "run4.json");
    await register(file, "t4");
    const agent = startAgent(file, ["--shutdown-grace", "60"]);
    const ids = await startJob(sshJob("t4", sleepPlaybook(34.5)));
    await untilStatus(ids, ["RUNNING"]);
    agent.signal("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    agent.signal("SIGINT");
    expect(await agent.exit).toBe(5);
    expect((await execution(ids)).status).toBe("KILLED");
    expect(await waitUntilGone(() => processesWithEnv("RUNNER_AGENT_TRACKING_ID", `${agent.child.pid}:`), 3000)).toEqual([]);
  });

  it("hands back an execution that is still cloning on SIGTERM: it goes back to PENDING", async () => {
    const file = join(stack.dir, "run5.json");
    await register(file, "t5");
    const agent = startAgent(file);
    const port = (hang.address() as { port: number }).port;
    const ids = await startJob({
      location: "t5",
      repository: { url: `http://127.0.0.1:${port}/slow.git`, defaultPlaybook: "site.yml" },
      hosts: [{ id: "web1" }],
    });
    await untilStatus(ids, ["INITIALIZING"]);
    await new Promise((r) => setTimeout(r, 500));
    agent.signal("SIGTERM");
    expect(await agent.exit).toBe(0);
    expect(agent.output()).toContain("execution handed back");
    expect((await execution(ids)).status).toBe("PENDING");
    await stack.call("POST", `/jobs/${A}/${ids.jobId}/executions/${ids.executionId}/stop`, admin, {});
  });

  it("a restarted agent ends what a SIGKILLed one left running and removes its workspace (without the sandbox)", async () => {
    // The run's process group dies with its agent (the lifeline, tested below); without the
    // sandbox or a uid of its own, what left the group (setsid) is the next agent's to end.
    const file = join(stack.dir, "run7.json");
    await register(file, "t7");
    const first = startAgent(file, ["--isolation", "none"]);
    const playbook = `- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.shell: "setsid sleep 296.7 >/dev/null 2>&1 </dev/null &"\n    - ansible.builtin.command: sleep 36.5\n`;
    const left = () => processesWithEnv("RUNNER_AGENT_TRACKING_ID", `${first.child.pid}:`);
    let ids: { jobId: string; executionId: string } | undefined;
    try {
      ids = await startJob({ location: "t7", playbook: b64(playbook), hosts: [{ id: "localhost", hostVars: LOCAL }] });
      await untilStatus(ids, ["RUNNING"]);
      const workDir = workDirOf(file);
      const ownedBy = (pid: number) =>
        readdirSync(workDir).filter((n) => n.startsWith("x-") && readFileSync(join(workDir, n, ".owner"), "utf8").trim() === String(pid));
      await waitFor("the second task", async () => (left().some((p) => /^sleep 36\.5/.test(p.cmdline)) ? true : undefined));
      expect(ownedBy(first.child.pid!)).toHaveLength(1);
      process.kill(first.child.pid!, "SIGKILL");
      await first.exit;
      expect(await waitUntilGone(() => left().filter((p) => !/^sleep 296\.7/.test(p.cmdline)), 10_000)).toEqual([]);
      expect(left().map((p) => p.cmdline)).toEqual(["sleep 296.7"]); // orphaned, still running

      const second = startAgent(file, ["--isolation", "none"]);
      try {
        // "agent started" is logged before the sweep runs: wait for the sweep's own lines.
        await waitFor("the sweep", async () => (second.output().includes("removed workspaces left by an earlier agent") ? true : undefined));
        expect(second.output()).toContain("killed processes left by an earlier agent that did not exit cleanly");
        expect(second.output()).toContain("removed workspaces left by an earlier agent");
        expect(await waitUntilGone(left, 3000)).toEqual([]);
        expect(ownedBy(first.child.pid!)).toEqual([]);
        // It also says at once what the dead agent held, instead of the server waiting out the lease.
        await waitFor("the report", async () => (second.output().includes("reported an execution an earlier agent process held as lost") ? true : undefined));
        expect(await execution(ids)).toMatchObject({ status: "FAILURE", reason: "agent_lost" });
      } finally {
        second.signal("SIGTERM");
      }
      expect(await second.exit).toBe(0);
    } finally {
      first.child.kill("SIGKILL");
      killAll(left()); // when it failed before the second agent's sweep
      if (ids) await stack.call("POST", `/jobs/${A}/${ids.jobId}/executions/${ids.executionId}/kill`, admin, {});
    }
  });

  // bwrap's --die-with-parent covers the sandbox; under uid and none the callback plugin's lifeline
  // (fd 4, whose other end only the agent holds) kills the run's process group, and under uid also
  // every process of the slot's uid (what left the group with setsid).
  it.each([
    ["none", 1],
    ["uid", 2],
    ["sandbox", 3],
  ] as const)("a run dies with its SIGKILLed agent, with nothing else doing the killing (isolation %s)", async (level, n) => {
    if (level !== "none") expect(support[level], `isolation ${level} must work on this machine`).toMatchObject({ ok: true });
    const file = join(stack.dir, `death-${level}.json`);
    await register(file, `d-${level}`);
    const agent = startAgent(file, ["--isolation", level]);
    // Under none a process that leaves the session is the next agent's to end (see the test above).
    const escape = level === "none" ? "" : `    - ansible.builtin.shell: "setsid sleep 297.${n} >/dev/null 2>&1 </dev/null &"\n`;
    const playbook = `- hosts: all\n  gather_facts: false\n  tasks:\n${escape}    - ansible.builtin.command: sleep 298.${n}\n`;
    const marked = () => processesMatching(new RegExp(`sleep 29[78]\\.${n}`));
    const run = () => [...processesWithEnv("RUNNER_AGENT_TRACKING_ID", `${agent.child.pid}:`), ...marked()];
    try {
      await expectRunDiesWithAgent(agent, run, { location: `d-${level}`, playbook: b64(playbook), hosts: [{ id: "localhost", hostVars: LOCAL }] }, async () => {
        await waitFor("the task's sleep", async () => (marked().some((p) => p.cmdline.includes("298")) ? true : undefined));
        if (escape) expect(marked().some((p) => p.cmdline.includes("297"))).toBe(true);
        expect(run().some((p) => /ansible-playbook/.test(p.cmdline))).toBe(true);
      });
    } finally {
      if (level === "uid") removeSlotUsers(defaultUidBase(workDirOf(file)), 1); // made system users by the agent
    }
  });

  it("a clone dies with its SIGKILLed agent: git's watcher kills its group (isolation none)", async () => {
    const file = join(stack.dir, "death-git.json");
    await register(file, "d-git");
    const agent = startAgent(file, ["--isolation", "none"]);
    const run = () => processesWithEnv("RUNNER_AGENT_TRACKING_ID", `${agent.child.pid}:`);
    const port = (hang.address() as { port: number }).port;
    await expectRunDiesWithAgent(
      agent,
      run,
      { location: "d-git", repository: { url: `http://127.0.0.1:${port}/dead.git`, defaultPlaybook: "site.yml" }, hosts: [{ id: "web1" }] },
      async () => {
        await waitFor("git, hanging", async () => (run().some((p) => /^git .*clone/.test(p.cmdline)) ? true : undefined));
      },
    );
  });

  it("runs a useDynamicInventory job on the account inventory, grouped for hosts: patterns; a restart reruns only the failed host", async () => {
    const file = join(stack.dir, "run8.json");
    await register(file, "t8");
    const flags = mkdtempSync(join(tmpdir(), "rnr-dyn-"));
    const agent = startAgent(file);
    try {
      const inv = await stack.call("PUT", `/inventory/${A}`, admin, {
        hosts: [
          { id: "w1", groups: ["web"], hostVars: sshd.hostVars({ tier: "front" }) },
          { id: "w2", groups: ["web", "eu"], hostVars: sshd.hostVars({ tier: "front" }) },
          { id: "d1", groups: ["db"], hostVars: sshd.hostVars({ tier: "data" }) },
        ],
      });
      expect(inv.status, inv.text).toBe(200);
      // w2 fails until its flag file exists; d1 is not in the group the play targets.
      const playbook = b64(`- hosts: web
  gather_facts: false
  tasks:
    - name: show where we are
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} tier={{ tier }} groups={{ group_names | join(',') }}"
    - name: ready?
      ansible.builtin.stat:
        path: "${flags}/{{ inventory_hostname }}"
      register: ready
    - name: fail where not ready
      ansible.builtin.fail:
        msg: not ready
      when: inventory_hostname == 'w2' and not ready.stat.exists
`);
      const ids = await startJob({ location: "t8", playbook, sshPrivateKey: sshd.clientKey.base64, useDynamicInventory: true });
      const first = await untilStatus(ids, ["SUCCESS", "FAILURE", "INIT_FAILURE"]);
      expect(first.status, JSON.stringify(first)).toBe("FAILURE");
      expect(first.failed_hosts).toEqual(["w2"]);
      expect(Object.keys(first.host_stats).sort()).toEqual(["w1", "w2"]);
      const log = (await stack.call("GET", `/jobs/${A}/${ids.jobId}/executions/${ids.executionId}/log`, admin)).text;
      expect(log).toContain("w2 tier=front groups=eu,web");
      expect(log).not.toContain("d1");

      writeFileSync(join(flags, "w2"), "");
      const restart = await stack.call("POST", `/jobs/${A}/${ids.jobId}/executions/${ids.executionId}/restart`, admin, {});
      expect(restart.status, restart.text).toBe(200);
      const second = await untilStatus(ids, ["SUCCESS", "FAILURE", "INIT_FAILURE"]);
      expect(second.status, JSON.stringify(second)).toBe("SUCCESS");
      expect(second.timers).toHaveLength(2);
      // Only w2 ran again (host_stats merges the attempts' counters, so look at the log).
      const both = (await stack.call("GET", `/jobs/${A}/${ids.jobId}/executions/${ids.executionId}/log`, admin)).text;
      expect(both.split("w1 tier=front").length - 1).toBe(1);
      expect(both.split("w2 tier=front").length - 1).toBe(2);
    } finally {
      agent.signal("SIGTERM");
      rmSync(flags, { recursive: true, force: true });
    }
    expect(await agent.exit).toBe(0);
  });

  it("runs with the start-time overrides: a per-execution host key, properties, tags, check and diff", async () => {
    const file = join(stack.dir, "run9.json");
    await register(file, "t9");
    const agent = startAgent(file);
    const target = join(stack.dir, `override-${Date.now()}.txt`);
    try {
      const stranger = sshd.newClientKey({ authorized: false });
      const create = await stack.call("POST", `/jobs/${A}`, admin, {
        name: "overrides",
        location: "t9",
        playbook: b64(`- hosts: all
  gather_facts: false
  tasks:
    - name: who
      ansible.builtin.debug:
        msg: "who={{ who }}"
      tags: [deploy]
    - name: write
      ansible.builtin.copy:
        content: "{{ who }}\n"
        dest: "${target}"
      tags: [deploy]
    - name: untagged
      ansible.builtin.debug:
        msg: should not run
`),
        sshPrivateKey: stranger.base64, // the stored key is refused by the host...
        hosts: [{ id: "web1", hostVars: sshd.hostVars() }],
        properties: { who: "stored" },
      });
      expect(create.status, create.text).toBe(200);
      const jobId = create.json.id;
      // ...this run brings its own, and its own variables, tags and modes.
      const start = await stack.call("POST", `/jobs/${A}/${jobId}/start`, admin, {
        hosts: [{ id: "web1", sshPrivateKey: sshd.clientKey.base64 }],
        properties: { who: "override" },
        playbookTags: ["deploy"],
        check: true,
        diff: true,
      });
      expect(start.status, start.text).toBe(200);
      const ids = { jobId, executionId: start.json.execution_id };
      const done = await untilStatus(ids, ["SUCCESS", "FAILURE", "INIT_FAILURE"]);
      expect(done.status, JSON.stringify(done)).toBe("SUCCESS");
      const log = (await stack.call("GET", `/jobs/${A}/${jobId}/executions/${ids.executionId}/log`, admin)).text;
      expect(log).toContain("who=override");
      expect(log).toMatch(/\+override/); // --diff
      expect(log).not.toContain("should not run"); // --tags deploy
      expect(() => statSync(target)).toThrow(); // --check changed nothing
    } finally {
      agent.signal("SIGTERM");
    }
    expect(await agent.exit).toBe(0);
  });

  it("exits 3 with a clear message when its credential is revoked", async () => {
    const file = join(stack.dir, "run6.json");
    const data = await register(file, "t6");
    const agent = startAgent(file);
    await waitFor("agent started", async () => (agent.output().includes("agent started") ? true : undefined));
    const del = await stack.call("DELETE", `/minions/${A}/${data.agentId}`, admin);
    expect(del.status, del.text).toBe(204);
    expect(await agent.exit).toBe(3);
    expect(agent.output()).toContain("the API rejected this agent's credential (revoked or unknown): register the agent again");
  });
});
