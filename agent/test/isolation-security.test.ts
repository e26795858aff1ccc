// A tenant's playbook attacks the agent and another tenant's run on the same agent, as an attacker
// would, with real processes: the agent's config file (its credential), its /proc entries, a
// signal to it, the other run's key file, workspace and processes, and a process left behind to
// outlive the run. Under each isolation level every attack fails and the victim is untouched.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Run } from "../src/run.ts";
import { defaultUidBase, probeIsolation, type Isolation } from "../src/sandbox.ts";
import { listProcesses } from "../../test/fixtures/processes.ts";
import { b64, makeLease, MemorySink, workRoot } from "./helpers.ts";

const CONFIG_SECRET = "rac_agentcredential_CONFIGSECRET";
const ENV_SECRET = "rac_agentcredential_ENVSECRET";
const CMDLINE_SECRET = "CMDLINESECRET";
const VICTIM_KEY_MARK = "VICTIMKEYMATERIAL0123456789";
const VICTIM_PLAYBOOK_MARK = "victim-playbook-marker";
const local = { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" };

function uidOf(pid: number): number | null {
  try {
    return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
  } catch {
    return null;
  }
}
const processesOf = (uid: number) => listProcesses().filter((p) => uidOf(p.pid) === uid);

/** The attacker's playbook: every attempt prints what it got and its exit code. */
function attack(vars: { config: string; agentPid: number; victimWs: string; victimKey: string; workRoot: string; victimPid: number }): string {
  const tries: [string, string][] = [
    ["config", `cat ${vars.config}`],
    ["agent cmdline", `cat /proc/${vars.agentPid}/cmdline`],
    ["agent environ", `cat /proc/${vars.agentPid}/environ`],
    ["signal agent", `kill -0 ${vars.agentPid}`],
    ["victim key", `cat ${vars.victimKey}`],
    ["victim keys by glob", `for f in ${vars.workRoot}/x-*/private/key-*.pem; do rev "$f"; done`],
    ["victim workspace", `ls ${vars.victimWs} ${vars.victimWs}/project && cat ${vars.victimWs}/project/playbook.yml`],
    ["signal victim", `kill -0 ${vars.victimPid}`],
    ["victim processes", `for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done | grep -c '^sleep 31'`],
  ];
  const tasks = tries
    .map(
      ([name, cmd]) => `    - name: "try: ${name}"\n      ansible.builtin.shell: ${JSON.stringify(`${cmd} 2>&1; echo "rc=$?"`)}\n      changed_when: false\n`,
    )
    .join("");
  // A process that clears its environment, leaves the session and the process group, and would
  // outlive the run.
  const escape = `    - name: leave something running\n      ansible.builtin.shell: "setsid env -i /bin/sh -c 'sleep 300' >/dev/null 2>&1 < /dev/null &"\n`;
  return `- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}${escape}`;
}

function outputOf(sink: MemorySink, name: string): string {
  const e = sink.events.find((x) => x.event_type === "runner_on_ok" && x.task === `try: ${name}`);
  const result = (e?.data as { result?: { stdout?: string } } | undefined)?.result;
  if (result?.stdout === undefined) throw new Error(`no result for ${name}`);
  return result.stdout;
}

const support = probeIsolation(tmpdir());

describe.each<"sandbox" | "uid">(["sandbox", "uid"])("isolation %s: a tenant's playbook against the agent and another tenant", (level) => {
  const work = workRoot();
  const agentDir = mkdtempSync(join(tmpdir(), "rnr-agentcfg-"));
  const config = join(agentDir, "config.json");
  const base = defaultUidBase(work.dir);
  let decoy: ChildProcess;

  beforeAll(() => {
    // An agent's config file, 0600 in a 0700 directory, as `register` writes it.
    chmodSync(agentDir, 0o700);
    writeFileSync(config, JSON.stringify({ credential: CONFIG_SECRET }), { mode: 0o600 });
    // A stand-in for the agent process: its environment holds a credential, its arguments a secret.
    decoy = spawn("/bin/sh", ["-c", "sleep 300", "runner-agent", `--secret=${CMDLINE_SECRET}`], {
      env: { PATH: process.env.PATH, RUNNER_CREDENTIAL: ENV_SECRET },
      stdio: "ignore",
      detached: true, // its own group: the sleep it forks goes with it at the end
    });
  });
  afterAll(() => {
    if (decoy?.pid) process.kill(-decoy.pid, "SIGKILL");
    work.remove();
    rmSync(agentDir, { recursive: true, force: true });
  });

  it("reads nothing of the agent or the other run, signals neither, and leaves no process behind", async () => {
    expect(support[level], `isolation ${level} must work on this machine`).toMatchObject({ ok: true });
    const iso = (slot: number): Isolation => ({ level, uid: base + slot, gid: base + slot, hide: [config] });

    // The victim: another account's run in the other slot, holding a key, busy for a while.
    const victimKey = `-----BEGIN OPENSSH PRIVATE KEY-----\n${VICTIM_KEY_MARK}\n-----END OPENSSH PRIVATE KEY-----\n`;
    const victimLease = makeLease({
      playbook: b64(`# ${VICTIM_PLAYBOOK_MARK}\n- hosts: all\n  gather_facts: false\n  tasks:\n    - name: work\n      ansible.builtin.command: sleep 31\n`),
      hosts: [{ id: "localhost", hostVars: local, sshPrivateKey: b64(victimKey) }],
    });
    const victimSink = new MemorySink();
    const victim = new Run(victimLease, victimSink, { workRoot: work.dir, isolation: iso(1) });
    const victimDone = victim.run();
    await victimSink.waitFor((e) => e.event_type === "runner_on_start");
    const victimWs = readdirSync(work.dir)
      .map((n) => join(work.dir, n))
      .find((d) => existsSync(join(d, "private", "key-1.pem")))!;
    expect(victimWs).toBeTruthy();
    let victimPid = 0;
    for (let i = 0; i < 200 && !victimPid; i++) {
      victimPid = processesOf(base + 1).find((p) => /^sleep 31/.test(p.cmdline))?.pid ?? 0;
      if (!victimPid) await new Promise((r) => setTimeout(r, 50));
    }
    expect(victimPid).toBeGreaterThan(0);

    const attackerLease = makeLease({
      playbook: b64(attack({ config, agentPid: decoy.pid!, victimWs, victimKey: join(victimWs, "private", "key-1.pem"), workRoot: work.dir, victimPid })),
      hosts: [{ id: "localhost", hostVars: local }],
    });
    const sink = new MemorySink();
    const attacker = new Run(attackerLease, sink, { workRoot: work.dir, isolation: iso(0), env: { ...process.env, RUNNER_CREDENTIAL: ENV_SECRET } });
    const result = await attacker.run();
    expect(result.status, sink.log()).toBe("SUCCESS");

    // Every attempt ran, and every one failed.
    for (const name of ["config", "agent environ", "signal agent", "victim key", "victim keys by glob", "victim workspace", "signal victim"]) {
      expect(outputOf(sink, name), name).not.toMatch(/rc=0$/);
    }
    // In the sandbox the agent's and the victim's processes are not even there to be named.
    if (level === "sandbox") {
      expect(outputOf(sink, "agent cmdline")).not.toMatch(/rc=0$/);
      expect(outputOf(sink, "signal agent")).toMatch(/No such process/);
      expect(outputOf(sink, "victim processes")).toMatch(/^0\n/);
    } else {
      expect(outputOf(sink, "signal agent")).toMatch(/not permitted/);
    }
    const everything = JSON.stringify(sink.events);
    for (const secret of [CONFIG_SECRET, ENV_SECRET, VICTIM_KEY_MARK, [...VICTIM_KEY_MARK].reverse().join(""), VICTIM_PLAYBOOK_MARK]) {
      expect(everything, secret).not.toContain(secret);
    }
    if (level === "sandbox") expect(everything).not.toContain(CMDLINE_SECRET);

    // Nothing of the attacker's run outlives it, not even what left its session and environment.
    expect(processesOf(base)).toEqual([]);
    // The victim is untouched: still running, then done as it would have been.
    expect(processesOf(base + 1).some((p) => p.pid === victimPid)).toBe(true);
    victim.command("kill");
    const v = await victimDone;
    expect(v.status).toBe("KILLED");
    expect(processesOf(base + 1)).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });
});

describe("the sandbox", () => {
  const work = workRoot();
  afterAll(() => work.remove());

  it("gives the run a private /tmp, the system read-only, only its own workspace writable, and the slot user's name", async () => {
    const base = defaultUidBase(work.dir);
    const outside = mkdtempSync(join(tmpdir(), "rnr-outside-"));
    mkdirSync(join(outside, "d"));
    chmodSync(outside, 0o777);
    const pb = `- hosts: all
  gather_facts: false
  tasks:
    - { name: "try: whoami", ansible.builtin.shell: "id -un; echo rc=$?", changed_when: false }
    - { name: "try: tmp", ansible.builtin.shell: "ls -A /tmp | grep -v rnr-work; echo rc=$?", changed_when: false }
    - { name: "try: write usr", ansible.builtin.shell: "touch /usr/rnr-x 2>&1; echo rc=$?", changed_when: false }
    - { name: "try: write outside", ansible.builtin.shell: "touch ${outside}/d/x 2>&1; echo rc=$?", changed_when: false }
    - { name: "try: write home", ansible.builtin.shell: "touch $HOME/x && echo rc=$?", changed_when: false }
`;
    const sink = new MemorySink();
    const exec = new Run(makeLease({ playbook: b64(pb), hosts: [{ id: "localhost", hostVars: local }] }), sink, {
      workRoot: work.dir,
      isolation: { level: "sandbox", uid: base + 7, gid: base + 7 },
    });
    expect((await exec.run()).status, sink.log()).toBe("SUCCESS");
    expect(outputOf(sink, "whoami")).toBe("runner\nrc=0");
    expect(outputOf(sink, "tmp")).toBe("rc=1"); // nothing but the path to its workspace
    expect(outputOf(sink, "write usr")).toMatch(/Read-only file system[\s\S]*rc=1/);
    expect(outputOf(sink, "write outside")).toMatch(/rc=1$/);
    expect(existsSync(join(outside, "d", "x"))).toBe(false);
    expect(outputOf(sink, "write home")).toBe("rc=0");
    rmSync(outside, { recursive: true, force: true });
  });
});
