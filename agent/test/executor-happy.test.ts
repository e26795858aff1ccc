// The executor against real ansible-playbook over real SSH (test sshd on 127.0.0.1).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Run } from "../src/run.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
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
