// Stop, kill, the local TTL backstop, hand-back and abandon: what ends the run, what is reported,
// and that no process of the execution is left afterwards (checked in /proc).
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Run } from "../src/run.ts";
import { processesMatching, waitUntilGone } from "../../test/fixtures/processes.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import { b64, makeLease, MemorySink, trackedLeftovers, workRoot } from "./helpers.ts";

let sshd: SshServer;
const work = workRoot();

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  // Commands ssh started on the "remote" side run on after the client dies, as they would on a
  // real host; the sshd fixture ends them when it stops.
  await sshd?.stop();
  work.remove();
});

const longPlaybook = (seconds: number, tasks = 3) =>
  `- name: long\n  hosts: all\n  gather_facts: false\n  tasks:\n` +
  Array.from({ length: tasks }, (_, i) => `    - name: step ${i + 1}\n      ansible.builtin.command: sleep ${seconds}\n`).join("");

function hosts(n: number) {
  return Array.from({ length: n }, (_, i) => ({ id: `h${i + 1}`, hostVars: sshd.hostVars() }));
}

describe("stop and kill", () => {
  it("stop lets the running task finish, starts no other, ends STOPPED and leaves no process", async () => {
    const lease = makeLease({ playbook: b64(longPlaybook(1.5)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(2) });
    const sink = new MemorySink();
    const exec = new Run(lease, sink, { workRoot: work.dir });
    const done = exec.run();
    await sink.waitFor((e) => e.event_type === "runner_on_start" && e.task === "step 1");
    exec.command("stop");
    const result = await done;

    expect(result.status).toBe("STOPPED");
    expect(sink.reports.at(-1)).toMatchObject({ status: "STOPPED", reason: "stopped" });
    // step 1 ran to its end on both hosts; step 2 never started.
    expect(
      sink.events
        .filter((e) => e.event_type === "runner_on_ok" && e.task === "step 1")
        .map((e) => e.host)
        .sort(),
    ).toEqual(["h1", "h2"]);
    expect(sink.events.some((e) => e.task === "step 2")).toBe(false);
    expect(await waitUntilGone(trackedLeftovers, 2000)).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });

  it("kill ends ansible-playbook and every ssh child at once, ends KILLED", async () => {
    const lease = makeLease({ playbook: b64(longPlaybook(31.5, 1)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(2) });
    const sink = new MemorySink();
    const exec = new Run(lease, sink, { workRoot: work.dir });
    const done = exec.run();
    await sink.waitFor((e) => e.event_type === "runner_on_start" && e.host === "h2");
    await new Promise((r) => setTimeout(r, 500)); // let the ssh connections open

    const before = trackedLeftovers();
    expect(before.some((p) => /ansible-playbook/.test(p.cmdline))).toBe(true);
    expect(before.some((p) => /^ssh /.test(p.cmdline))).toBe(true);

    const t0 = Date.now();
    exec.command("kill");
    const result = await done;
    expect(Date.now() - t0).toBeLessThan(10_000); // not the 31.5 s of the task
    expect(result.status).toBe("KILLED");
    expect(sink.reports.at(-1)).toMatchObject({ status: "KILLED", reason: "killed" });
    expect(trackedLeftovers()).toEqual([]);
    for (const p of before)
      expect(
        processesMatching(/./).some((q) => q.pid === p.pid),
        p.cmdline,
      ).toBe(false);
    expect(work.leftovers()).toEqual([]);
  });

  it("when ansible-playbook itself dies (killed from outside), ends FAILURE and still leaves no process or file", async () => {
    const lease = makeLease({ playbook: b64(longPlaybook(30.5, 1)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(2) });
    const sink = new MemorySink();
    const exec = new Run(lease, sink, { workRoot: work.dir });
    const done = exec.run();
    await sink.waitFor((e) => e.event_type === "runner_on_start" && e.host === "h2");
    await new Promise((r) => setTimeout(r, 500));
    const running = trackedLeftovers();
    const main = running.find((p) => p.pid === p.pgid && /ansible-playbook/.test(p.cmdline))!;
    expect(main).toBeDefined();
    expect(running.filter((p) => p.pid !== main.pid).length).toBeGreaterThan(0); // its workers and ssh
    expect(work.leftovers()).toHaveLength(1);
    process.kill(main.pid, "SIGKILL"); // only the main process: its children are orphaned
    const result = await done;
    expect(result.status).toBe("FAILURE");
    expect(sink.reports.at(-1)).toMatchObject({ status: "FAILURE", reason: "ansible_killed", exitCode: null });
    expect(sink.reports.at(-1)!.detail).toMatch(/ansible-playbook was killed by SIGKILL, not by Runner/);
    expect(await waitUntilGone(trackedLeftovers, 2000)).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });

  it("enforces the lease deadline locally: stop at the deadline, kill when the stop does not end it", async () => {
    const lease = makeLease(
      { playbook: b64(longPlaybook(32.5, 1)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(1) },
      // Late enough that the task is running (a stop before the playbook starts ends it at once).
      { deadline: Date.now() + 4000 },
    );
    const sink = new MemorySink();
    const result = await new Run(lease, sink, { workRoot: work.dir, deadlineKillAfterMs: 1000 }).run();
    expect(result.status).toBe("KILLED");
    expect(sink.reports.at(-1)).toMatchObject({ status: "KILLED", reason: "ttl_expired" });
    expect(trackedLeftovers()).toEqual([]);
  });

  it("a deadline stop ends STOPPED (reason ttl_expired) when the running task finishes in time", async () => {
    const lease = makeLease({ playbook: b64(longPlaybook(1, 4)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(1) }, { deadline: Date.now() + 1000 });
    const sink = new MemorySink();
    const result = await new Run(lease, sink, { workRoot: work.dir }).run();
    expect(result.status).toBe("STOPPED");
    expect(sink.reports.at(-1)).toMatchObject({ status: "STOPPED", reason: "ttl_expired" });
    expect(sink.events.some((e) => e.task === "step 4")).toBe(false);
  });

  it("abandon kills the run and reports nothing more", async () => {
    const lease = makeLease({ playbook: b64(longPlaybook(33.5, 1)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(1) });
    const sink = new MemorySink();
    const exec = new Run(lease, sink, { workRoot: work.dir });
    const done = exec.run();
    await sink.waitFor((e) => e.event_type === "runner_on_start");
    exec.abandon();
    const result = await done;
    expect(result).toMatchObject({ status: null, abandoned: true });
    expect(sink.statuses()).toEqual(["RUNNING"]);
    expect(trackedLeftovers()).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });
});

describe("before the playbook starts", () => {
  let hang: Server;
  const sockets: Socket[] = [];
  let hangPort = 0;
  beforeAll(async () => {
    // A git server that accepts and never answers: the clone hangs until we end it.
    hang = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
    hangPort = (hang.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => hang.close(r));
  });

  const hangingRepo = () => ({ repository: { url: `http://127.0.0.1:${hangPort}/repo.git`, defaultPlaybook: "site.yml" }, hosts: [{ id: "h1" }] });

  it("hands back an execution still cloning: git killed, nothing reported, workspace gone", async () => {
    const sink = new MemorySink();
    const exec = new Run(makeLease(hangingRepo()), sink, { workRoot: work.dir });
    const done = exec.run();
    await new Promise((r) => setTimeout(r, 700));
    expect(trackedLeftovers().some((p) => /git/.test(p.cmdline))).toBe(true);
    expect(exec.handBack()).toBe(true);
    const result = await done;
    expect(result).toMatchObject({ status: null, handedBack: true });
    expect(sink.reports).toEqual([]);
    expect(trackedLeftovers()).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });

  it("a stop during the clone ends STOPPED at once", async () => {
    const sink = new MemorySink();
    const exec = new Run(makeLease(hangingRepo()), sink, { workRoot: work.dir });
    const done = exec.run();
    await new Promise((r) => setTimeout(r, 500));
    exec.command("stop");
    const result = await done;
    expect(result.status).toBe("STOPPED");
    expect(sink.statuses()).toEqual(["STOPPED"]);
    expect(trackedLeftovers()).toEqual([]);
  });

  it("will not hand back an execution whose playbook has started", async () => {
    const lease = makeLease({ playbook: b64(longPlaybook(1, 1)), sshPrivateKey: sshd.clientKey.base64, hosts: hosts(1) });
    const sink = new MemorySink();
    const exec = new Run(lease, sink, { workRoot: work.dir });
    const done = exec.run();
    await sink.waitFor((e) => e.event_type === "playbook_on_start");
    expect(exec.handBack()).toBe(false);
    expect((await done).status).toBe("SUCCESS");
  });
});
