// Failed and unreachable hosts, and a restart limited to the failed host (real ansible, real sshd).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Run } from "../src/run.ts";
import { freePort, startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import { b64, makeLease, MemorySink, trackedLeftovers, workRoot } from "./helpers.ts";

let sshd: SshServer;
const work = workRoot();
const flags = mkdtempSync(join(tmpdir(), "rnr-flags-"));

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
  work.remove();
  rmSync(flags, { recursive: true, force: true });
});

// host2 fails until its flag file exists: a restart after "fixing" host2 succeeds.
const FAILS_ON_HOST2 = `
- name: deploy
  hosts: all
  gather_facts: false
  tasks:
    - name: check the host is ready
      ansible.builtin.stat:
        path: "${flags}/{{ inventory_hostname }}.ready"
      register: ready
    - name: fail where it is not
      ansible.builtin.fail:
        msg: "{{ inventory_hostname }} is not ready"
      when: inventory_hostname == 'host2' and not ready.stat.exists
    - name: after
      ansible.builtin.debug:
        msg: done
`;

describe("executor, failures", () => {
  it("ends FAILURE naming the one host of three that failed, and a restart limited to it reruns only it", async () => {
    const hosts = ["host1", "host2", "host3"].map((id) => ({ id, hostVars: sshd.hostVars() }));
    const job = { playbook: b64(FAILS_ON_HOST2), sshPrivateKey: sshd.clientKey.base64, hosts };

    const sink = new MemorySink();
    const first = await new Run(makeLease(job), sink, { workRoot: work.dir }).run();
    expect(first.status).toBe("FAILURE");
    const report = sink.reports.at(-1)!;
    expect(report).toMatchObject({ status: "FAILURE", reason: "playbook_failed", exitCode: 2, failedHosts: ["host2"] });
    expect(report.detail).toBe("failed on host2");
    expect(report.hostStats!.host2).toMatchObject({ failed: 1, ok: 1 });
    expect(report.hostStats!.host1).toMatchObject({ failed: 0, ok: 2, skipped: 1 });
    const failed = sink.events.filter((e) => e.event_type === "runner_on_failed");
    expect(failed.map((e) => e.host)).toEqual(["host2"]);
    expect(failed[0]!.stdout).toContain("fatal: [host2]: FAILED!");
    expect(failed[0]!.stdout).toContain("host2 is not ready");

    // The restart: same job, the lease limited to the failed hosts, host2 now ready.
    writeFileSync(join(flags, "host2.ready"), "");
    const sink2 = new MemorySink();
    const second = await new Run(makeLease(job, { attempt: 2, limit: report.failedHosts }), sink2, { workRoot: work.dir }).run();
    expect(second.status).toBe("SUCCESS");
    const ran = new Set(sink2.events.filter((e) => e.host).map((e) => e.host));
    expect([...ran]).toEqual(["host2"]);
    expect(Object.keys(sink2.reports.at(-1)!.hostStats!)).toEqual(["host2"]);
    expect(work.leftovers()).toEqual([]);
  });

  it("reports an unreachable host with runner_on_unreachable and FAILURE", async () => {
    const closedPort = await freePort();
    const lease = makeLease({
      playbook: b64(`- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n`),
      sshPrivateKey: sshd.clientKey.base64,
      hosts: [
        { id: "alive", hostVars: sshd.hostVars() },
        { id: "gone", hostVars: sshd.hostVars({ ansible_port: closedPort }) },
      ],
    });
    const sink = new MemorySink();
    const result = await new Run(lease, sink, { workRoot: work.dir }).run();
    expect(result.status).toBe("FAILURE");
    const unreachable = sink.events.filter((e) => e.event_type === "runner_on_unreachable");
    expect(unreachable.map((e) => e.host)).toEqual(["gone"]);
    expect(unreachable[0]!.stdout).toMatch(/fatal: \[gone\]: UNREACHABLE!/);
    expect(unreachable[0]!.data.result).toMatchObject({ unreachable: true });
    const report = sink.reports.at(-1)!;
    expect(report).toMatchObject({ status: "FAILURE", reason: "hosts_unreachable", exitCode: 4, failedHosts: ["gone"] });
    expect(report.detail).toBe("unreachable: gone");
    expect(report.hostStats!.gone).toMatchObject({ unreachable: 1 });
    expect(report.hostStats!.alive).toMatchObject({ ok: 1, unreachable: 0 });
    expect(trackedLeftovers()).toEqual([]);
  });
});
