// The API unreachable under a running execution (a network partition between the agent and the
// edge), with real ansible-playbook: a partition shorter than the lease loses nothing; one that
// lasts the whole lease ends with the agent killing its run itself.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ApiError, type EventsAnswer, type HeartbeatAnswer, type StatusAnswer } from "../src/api-client.ts";
import { Session } from "../src/session.ts";
import type { StatusReport, WireEvent } from "../src/types.ts";
import { b64, makeLease, RecordingTransport, trackedLeftovers, workRoot } from "./helpers.ts";
import { waitUntilGone } from "../../test/fixtures/processes.ts";

const work = workRoot();
const stateDir = mkdtempSync(join(tmpdir(), "rnr-state-"));
const spoolDir = join(stateDir, "spool");
afterAll(() => {
  work.remove();
  rmSync(stateDir, { recursive: true, force: true });
});
const local = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
const playbook = (tasks: string) => b64(`- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * A RecordingTransport behind a link that can be cut: while `down` every call fails as a refused
 * connection does, and nothing reaches the recorder. `accepted` lists the seqs of every upload
 * that got through, so a duplicate would show; `leaseMs` is the lease each answer renews.
 */
class PartitionedTransport extends RecordingTransport {
  down = false;
  leaseMs = 30_000;
  accepted: number[] = [];
  /** Calls made (successful or not) after `closedAt`: none may come after the session ended. */
  callsAfterEnd = 0;
  ended = false;

  private link(what: string): void {
    if (this.ended) this.callsAfterEnd++;
    if (this.down) throw new ApiError(`POST ${what}: fetch failed (ECONNREFUSED)`, 0);
  }
  override async events(body: { attempt: number; events: WireEvent[] }): Promise<EventsAnswer> {
    this.link("events");
    const a = await super.events(body);
    this.accepted.push(...body.events.map((e) => e.seq));
    return { ...a, leaseExpiresAt: Date.now() + this.leaseMs };
  }
  override async status(body: StatusReport & { attempt: number }): Promise<StatusAnswer> {
    this.link("status");
    return super.status(body);
  }
  override async heartbeat(body: { attempt: number }): Promise<HeartbeatAnswer> {
    this.link("heartbeat");
    await super.heartbeat(body);
    return { leaseExpiresAt: Date.now() + this.leaseMs, command: this.command };
  }
}

describe("the API unreachable while a playbook runs", () => {
  it("a partition shorter than the lease: the run goes on, and every event is uploaded once, in order, from a 0600 spool removed after", async () => {
    const t = new PartitionedTransport();
    // Enough output to spool (over 1 MiB): 400 results of 5,000 characters each while the API is away.
    const lease = makeLease(
      {
        playbook: playbook(
          `    - name: before
      ansible.builtin.debug: { msg: before }
    - name: wait
      ansible.builtin.command: sleep 1
    - name: chatty
      ansible.builtin.debug: { msg: "{{ 'x' * 5000 }} {{ item }}" }
      loop: "{{ range(0, 400) | list }}"
    - name: after
      ansible.builtin.command: sleep 1
`,
        ),
        hosts: local,
      },
      { heartbeatIntervalMs: 200 },
    );
    const session = new Session(lease, { transport: t, executor: { workRoot: work.dir }, spoolDir, memoryEvents: 50 });
    const done = session.run();
    let modes: number[] = [];
    try {
      await until("the playbook to start", () => t.statusReports.some((r) => r.status === "RUNNING"));
      t.down = true; // the partition
      const reported = t.statusReports.length;
      await until("the backlog to be spooled", () => session.spoolFiles.length > 0);
      modes = session.spoolFiles.map((f) => statSync(f).mode & 0o777);
      // The run went on without the API: the playbook ends while the link is still down.
      await until("the run to finish locally", () => session.execution.phase === "finishing");
      await sleep(1000);
      expect(t.statusReports).toHaveLength(reported); // nothing got through meanwhile
      t.down = false;
    } finally {
      t.down = false;
      const result = await done;
      t.ended = true;
      expect(result.status, JSON.stringify(result)).toBe("SUCCESS");
    }
    expect(modes.length).toBeGreaterThan(0);
    expect(modes.every((m) => m === 0o600)).toBe(true);
    const stored = t.storedEvents();
    expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1)); // no gap
    expect(t.accepted).toEqual(stored.map((e) => e.seq)); // each uploaded once, in order
    const items = stored.filter((e) => e.event_type === "runner_item_on_ok" || (e.task === "chatty" && e.event_type === "runner_on_ok"));
    expect(items.length).toBeGreaterThanOrEqual(400);
    expect(stored.some((e) => e.task === "after")).toBe(true);
    expect(stored.at(-1)!.event_type).toBe("playbook_on_stats");
    // The real outcome, once, after every event.
    expect(t.statusReports.filter((r) => r.status === "SUCCESS")).toHaveLength(1);
    const kinds = t.bodies.map((b) => (b.kind === "status" ? `status:${JSON.parse(b.json).status ?? "repo"}` : b.kind));
    expect(kinds.lastIndexOf("events")).toBeLessThan(kinds.indexOf("status:SUCCESS"));
    expect(readdirSync(spoolDir)).toEqual([]);
    expect(trackedLeftovers()).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });

  it("a partition as long as the lease: the agent kills its run itself when the lease expires, and reports nothing more for it", async () => {
    const t = new PartitionedTransport();
    t.leaseMs = 4_000; // the lost-agent window, short for the test
    const lease = makeLease(
      { playbook: playbook("    - name: long\n      ansible.builtin.command: sleep 300\n"), hosts: local },
      { heartbeatIntervalMs: 200, leaseExpiresAt: Date.now() + 4_000 },
    );
    const session = new Session(lease, { transport: t, executor: { workRoot: work.dir }, spoolDir });
    const done = session.run();
    try {
      await until("the playbook to start", () => t.statusReports.some((r) => r.status === "RUNNING"));
      await until("the task to run", () => trackedLeftovers().some((p) => p.cmdline.includes("sleep 300")));
      t.down = true; // and it never comes back within the lease
    } finally {
      const result = await done;
      t.ended = true;
      expect(result).toMatchObject({ status: null, abandoned: true, leaseLost: true });
    }
    expect(await waitUntilGone(() => trackedLeftovers(), 5_000)).toEqual([]);
    // No terminal status from this lease: the server has ended it agent_lost, and so it stays.
    expect(t.statusReports.map((r) => r.status)).toEqual(["RUNNING"]);
    t.down = false;
    await sleep(1000);
    expect(t.callsAfterEnd).toBe(0);
    expect(readdirSync(spoolDir)).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });
});
