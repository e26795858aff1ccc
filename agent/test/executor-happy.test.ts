// The executor against real ansible-playbook over real SSH (test sshd on 127.0.0.1).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Run } from "../src/run.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import type { StatusReport } from "../src/types.ts";
import { b64, makeLease, MemorySink, trackedLeftovers, workRoot } from "./helpers.ts";

let sshd: SshServer;
const work = workRoot();

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
  work.remove();
});

const THREE_HOSTS_PLAYBOOK = `
- name: greet
  hosts: all
  gather_facts: false
  tasks:
    - name: say hello
      ansible.builtin.command: echo "hello from {{ inventory_hostname }}"
      changed_when: false
    - name: note a var
      ansible.builtin.debug:
        msg: "colour={{ colour | default('none') }} prop={{ prop | default('none') }}"
`;

describe("executor, happy path", () => {
  it("runs an inline playbook on three hosts over ssh and reports SUCCESS with host stats", async () => {
    const lease = makeLease({
      playbook: b64(THREE_HOSTS_PLAYBOOK),
      sshPrivateKey: sshd.clientKey.base64,
      hosts: [
        { id: "host1", hostVars: sshd.hostVars({ colour: "red" }) },
        { id: "host2", hostVars: sshd.hostVars({ colour: "green" }) },
        { id: "host3", hostVars: sshd.hostVars() },
      ],
      properties: { prop: "from-properties" },
    });
    const sink = new MemorySink();
    const result = await new Run(lease, sink, { workRoot: work.dir }).run();

    expect(result.status).toBe("SUCCESS");
    expect(sink.statuses()).toEqual(["RUNNING", "SUCCESS"]);
    const final = sink.reports.at(-1)!;
    expect(final.exitCode).toBe(0);
    expect(final.failedHosts).toEqual([]);
    expect(Object.keys(final.hostStats!).sort()).toEqual(["host1", "host2", "host3"]);
    expect(final.hostStats!.host1).toEqual({ ok: 2, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 });

    const types = sink.types();
    expect(types[0]).toBe("playbook_on_start");
    expect(types).toContain("playbook_on_play_start");
    expect(types.filter((t) => t === "playbook_on_task_start")).toHaveLength(2);
    expect(types.filter((t) => t === "runner_on_ok")).toHaveLength(6);
    expect(types.at(-1)).toBe("playbook_on_stats");
    const ok = sink.events.find((e) => e.event_type === "runner_on_ok" && e.host === "host2" && e.task === "note a var")!;
    expect(ok.play).toBe("greet");
    expect(ok.stdout).toContain("colour=green prop=from-properties");
    expect((ok.data.result as { msg: string }).msg).toBe("colour=green prop=from-properties");

    const log = sink.log();
    expect(log).toMatch(/PLAY \[greet\] \*+/);
    expect(log).toMatch(/TASK \[say hello\] \*+/);
    expect(log).toMatch(/PLAY RECAP \*+/);
    expect(log).toMatch(/host3\s+: ok=2\s+changed=0\s+unreachable=0\s+failed=0/);

    expect(work.leftovers()).toEqual([]);
    expect(trackedLeftovers()).toEqual([]);
    expect(result.timings.leaseToSpawnMs).toBeGreaterThan(0);
  });
});

describe("executor, the run's end", () => {
  const localHost = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];

  it("flushes the last events the moment ansible-playbook exits (before the clean-up is done), then reports the final status; the hops are marked in order", async () => {
    const order: string[] = [];
    let workspacesAtFlush: string[] | null = null;
    class Recording extends MemorySink {
      override async flush(): Promise<void> {
        // Called once, at the exit: every event is in already, and the workspace is still there.
        workspacesAtFlush ??= work.leftovers();
        order.push(`flush after ${this.events.length} events`);
        await new Promise((r) => setTimeout(r, 20)); // the upload's round trip
        order.push("flushed");
      }
      override async report(r: StatusReport): Promise<void> {
        order.push(`report ${r.status ?? "-"}`);
        await super.report(r);
      }
    }
    const sink = new Recording();
    const playbook = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: hi\n";
    const result = await new Run(makeLease({ playbook: b64(playbook), hosts: localHost }), sink, { workRoot: work.dir }).run();

    expect(result.status).toBe("SUCCESS");
    expect(workspacesAtFlush!.length).toBe(1); // the flush began before the clean-up had removed it
    expect(order).toEqual(["report RUNNING", `flush after ${sink.events.length} events`, "flushed", "report SUCCESS"]);
    expect(sink.types().at(-1)).toBe("playbook_on_stats");
    const m = result.timings.marks;
    const hops = ["received", "workspaceReady", "spawned", "firstEvent", "exited", "flushed", "reported"] as const;
    for (const h of hops) expect(m[h], h).toBeGreaterThan(0);
    for (let i = 1; i < hops.length; i++) expect(m[hops[i]!]!, hops[i]).toBeGreaterThanOrEqual(m[hops[i - 1]!]!);
    expect(m.cleanedUp!).toBeLessThanOrEqual(m.reported!);
    expect(work.leftovers()).toEqual([]);
  });
});
