// What keeps working inside the sandbox, as a slot user: ssh to remote hosts with ControlPersist,
// git over HTTP with credentials and over ssh with a key, stop (SIGINT reaches ansible-playbook
// inside) and kill; and nothing of the run is left afterwards.
import { readFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Run } from "../src/run.ts";
import { defaultUidBase, ensureSlotUsers, removeSlotUsers, type Isolation } from "../src/sandbox.ts";
import { startGitServer, type GitServer } from "../../test/fixtures/git-server.ts";
import { listProcesses } from "../../test/fixtures/processes.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import { b64, makeLease, MemorySink, workRoot } from "./helpers.ts";

let git: GitServer;
let sshd: SshServer;
const work = workRoot();
const uid = defaultUidBase(work.dir) + 3;
const iso: Isolation = { level: "sandbox", uid, gid: uid };
const PASSWORD = "sandbox-Git-Pa55word";
const localPlay = (msg: string) => `- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: "${msg}"\n`;
const localHost = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];

const slotProcesses = () =>
  listProcesses().filter((p) => {
    try {
      return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"))![1]) === uid;
    } catch {
      return false;
    }
  });

beforeAll(async () => {
  [git, sshd] = await Promise.all([
    startGitServer([
      { name: "private", files: { "site.yml": localPlay("private repo in the sandbox") }, auth: { username: "deployer", password: PASSWORD } },
      { name: "public", files: { "site.yml": localPlay("over ssh in the sandbox") } },
    ]),
    startSshd(),
  ]);
});
afterEach(() => {
  expect(slotProcesses()).toEqual([]);
  expect(work.leftovers()).toEqual([]);
});
afterAll(async () => {
  await Promise.all([git?.stop(), sshd?.stop()]);
  work.remove();
});

const hosts = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `h${i + 1}`, hostVars: sshd.hostVars() }));
const steps = (seconds: number, n = 2) =>
  `- hosts: all\n  gather_facts: false\n  tasks:\n` +
  Array.from({ length: n }, (_, i) => `    - name: step ${i + 1}\n      ansible.builtin.command: sleep ${seconds}\n`).join("");

describe("in the sandbox", () => {
  it("runs over ssh on remote hosts, reusing one ControlPersist connection per host, and leaves no master behind", async () => {
    const lease = makeLease({ playbook: b64(steps(0.1, 3)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(2) });
    const sink = new MemorySink();
    const exec = new Run(lease, sink, { workRoot: work.dir, isolation: iso });
    const done = exec.run();
    await sink.waitFor((e) => e.event_type === "runner_on_ok" && e.task === "step 1");
    // The masters ssh left for the next tasks run as the slot user, inside the sandbox.
    expect(slotProcesses().some((p) => /^ssh: .*\[mux\]/.test(p.cmdline))).toBe(true);
    const result = await done;
    expect(result.status, sink.log()).toBe("SUCCESS");
    expect(result.hostStats).toMatchObject({ h1: { ok: 3, failed: 0 }, h2: { ok: 3, failed: 0 } });
  });

  it("clones over HTTP with credentials and over ssh with a key", async () => {
    const http = makeLease(
      { repository: { url: git.url("private"), defaultPlaybook: "site.yml", credentials: { username: "deployer", password: PASSWORD } }, hosts: localHost },
      { secrets: [PASSWORD] },
    );
    const s1 = new MemorySink();
    expect((await new Run(http, s1, { workRoot: work.dir, isolation: iso }).run()).status, s1.log()).toBe("SUCCESS");
    expect(s1.log()).toContain("private repo in the sandbox");
    expect(s1.reports.find((r) => r.repositoryLog)?.repositoryLog?.commit).toBe(git.commit("private", "main"));

    const ssh = makeLease({
      repository: { url: sshd.gitUrl(git.path("public")), defaultPlaybook: "site.yml", credentials: { sshPrivateKey: sshd.clientKey.base64 } },
      hosts: localHost,
    });
    const s2 = new MemorySink();
    expect((await new Run(ssh, s2, { workRoot: work.dir, isolation: iso }).run()).status, s2.log()).toBe("SUCCESS");
    expect(s2.log()).toContain("over ssh in the sandbox");
  });

  it("stop reaches ansible-playbook inside: the running task ends, no other starts, STOPPED", async () => {
    const lease = makeLease({ playbook: b64(steps(1.5)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(2) });
    const sink = new MemorySink();
    const exec = new Run(lease, sink, { workRoot: work.dir, isolation: iso });
    const done = exec.run();
    await sink.waitFor((e) => e.event_type === "runner_on_start" && e.task === "step 1");
    exec.command("stop");
    const result = await done;
    expect(result.status).toBe("STOPPED");
    expect(
      sink.events
        .filter((e) => e.event_type === "runner_on_ok" && e.task === "step 1")
        .map((e) => e.host)
        .sort(),
    ).toEqual(["h1", "h2"]);
    expect(sink.events.some((e) => e.task === "step 2")).toBe(false);
  });

  it("kill ends everything in the sandbox at once: KILLED", async () => {
    const lease = makeLease({ playbook: b64(steps(30)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(2) });
    const sink = new MemorySink();
    const exec = new Run(lease, sink, { workRoot: work.dir, isolation: iso });
    const done = exec.run();
    await sink.waitFor((e) => e.event_type === "runner_on_start" && e.task === "step 1");
    exec.command("kill");
    const result = await done;
    expect(result.status).toBe("KILLED");
    // The 30 s task never finished: it was killed, not waited for.
    expect(sink.events.some((e) => e.event_type === "runner_on_ok")).toBe(false);
  });
});

describe("with --isolation uid", () => {
  // Not the sandbox's slot: this one becomes a system user for the test's length.
  const uidOnly = defaultUidBase(work.dir) + 200;
  afterAll(() => removeSlotUsers(uidOnly, 1));

  it("runs over ssh as the slot user, once the agent made it a system user (ssh needs a passwd entry)", async () => {
    expect(ensureSlotUsers(uidOnly, 1)).toEqual([]);
    const lease = makeLease({ playbook: b64(steps(0.1, 2)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(1) });
    const sink = new MemorySink();
    const result = await new Run(lease, sink, { workRoot: work.dir, isolation: { level: "uid", uid: uidOnly, gid: uidOnly } }).run();
    expect(result.status, sink.log()).toBe("SUCCESS");
  });
});
