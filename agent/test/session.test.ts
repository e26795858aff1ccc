// One execution wired to its transport: heartbeats on their own timer, commands from answers,
// 409 abandon, and every event uploaded before the terminal status.
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, afterAll } from "vitest";
import { rmSync } from "node:fs";
import { ApiError, type EventsAnswer } from "../src/api-client.ts";
import { Session } from "../src/session.ts";
import { MAX_BATCH_EVENTS } from "../src/uploader.ts";
import type { WireEvent } from "../src/types.ts";
import { b64, makeLease, RecordingTransport, trackedLeftovers, workRoot } from "./helpers.ts";

const work = workRoot();
afterAll(() => work.remove());
const local = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
const playbook = (tasks: string) => b64(`- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}`);

describe("session", () => {
  it("keeps heartbeating while an upload is slow, and uploads every event before the terminal status", async () => {
    const t = new RecordingTransport();
    const slow = t.events.bind(t);
    let inSlowUpload = false;
    let heartbeatsDuringSlowUpload = 0;
    t.events = async (body: { attempt: number; events: WireEvent[] }): Promise<EventsAnswer> => {
      inSlowUpload = true;
      await new Promise((r) => setTimeout(r, 1500));
      inSlowUpload = false;
      return slow(body);
    };
    const hb = t.heartbeat.bind(t);
    t.heartbeat = async (body) => {
      if (inSlowUpload) heartbeatsDuringSlowUpload++;
      return hb(body);
    };
    const lease = makeLease(
      { playbook: playbook("    - ansible.builtin.debug:\n        msg: one\n    - ansible.builtin.debug:\n        msg: two\n"), hosts: local },
      { heartbeatIntervalMs: 200 },
    );
    const result = await new Session(lease, { transport: t, executor: { workRoot: work.dir } }).run();
    expect(result.status).toBe("SUCCESS");
    expect(heartbeatsDuringSlowUpload).toBeGreaterThanOrEqual(3);
    const kinds = t.bodies.map((b) => (b.kind === "status" ? `status:${JSON.parse(b.json).status ?? "repo"}` : b.kind));
    const terminal = kinds.indexOf("status:SUCCESS");
    expect(kinds.lastIndexOf("events")).toBeLessThan(terminal);
    expect(kinds.indexOf("status:RUNNING")).toBeLessThan(terminal);
    const events = t.storedEvents();
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)!.event_type).toBe("playbook_on_stats");
    expect(JSON.parse(t.bodies.find((b) => b.kind === "heartbeat")!.json)).toEqual({ attempt: lease.attempt, leaseId: lease.leaseId });
  });

  it("heartbeats on through a flood of 100,000 events while the API is slow, and stores each event once, in order", async () => {
    // ansible-playbook behind a wrapper that first writes 100,000 callback records and 100,000
    // lines of raw output, as a very chatty playbook would; the playbook itself prints 100,000 lines.
    const N = 100_000;
    const wrapper = join(work.dir, "..", `chatty-ansible-${process.pid}`);
    writeFileSync(
      wrapper,
      `#!/bin/sh
python3 -c '
import json, os
out = []
for i in range(${N}):
    out.append(json.dumps({"event": "runner_on_ok", "ts": 0, "host": "localhost", "task": "flood", "stdout": "flood line %d\\n" % i, "data": {"i": i}}) + "\\n")
    if len(out) == 1000:
        os.write(3, "".join(out).encode()); out = []
'
seq 1 ${N}
exec ansible-playbook "$@"
`,
    );
    chmodSync(wrapper, 0o755);
    const t = new RecordingTransport();
    const store = t.events.bind(t);
    const t0 = Date.now();
    let uploading = 0;
    const beats: { at: number; duringUpload: boolean }[] = [];
    t.events = async (body: { attempt: number; events: WireEvent[] }): Promise<EventsAnswer> => {
      uploading++;
      // The API answers slowly for the first seconds: a backlog of tens of thousands builds up.
      await new Promise((r) => setTimeout(r, Date.now() - t0 < 3000 ? 700 : 0));
      uploading--;
      return store(body);
    };
    const hb = t.heartbeat.bind(t);
    t.heartbeat = async (body) => {
      beats.push({ at: Date.now(), duringUpload: uploading > 0 });
      return hb(body);
    };
    const lease = makeLease(
      { playbook: playbook("    - ansible.builtin.command: seq 1 100000\n      changed_when: false\n"), hosts: local },
      { heartbeatIntervalMs: 300 },
    );
    try {
      const result = await new Session(lease, { transport: t, executor: { workRoot: work.dir, ansiblePlaybook: wrapper } }).run();
      expect(result.status, JSON.stringify(result)).toBe("SUCCESS");
    } finally {
      rmSync(wrapper, { force: true });
    }
    const events = t.storedEvents();
    expect(events.filter((e) => e.task === "flood")).toHaveLength(N);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)!.event_type).toBe("playbook_on_stats");
    const big = events.find((e) => e.event_type === "runner_on_ok" && e.task !== "flood")!;
    expect(big.data).toMatchObject({ truncated: true, result: { rc: 0 } }); // its ~1.3 MB result cut to fit a batch
    expect(big.data.originalBytes).toBeGreaterThan(1_000_000);
    const batches = t.bodies.filter((b) => b.kind === "events").map((b) => JSON.parse(b.json).events.length as number);
    expect(Math.max(...batches)).toBeLessThanOrEqual(MAX_BATCH_EVENTS);
    // Heartbeats kept their own pace while uploads were in flight; the lease (30 s) was never at risk.
    expect(beats.filter((b) => b.duringUpload).length).toBeGreaterThanOrEqual(3);
    const gaps = beats.slice(1).map((b, i) => b.at - beats[i]!.at);
    expect(Math.max(...gaps)).toBeLessThan(10_000);
  });

  it("obeys a kill that comes in a heartbeat answer", async () => {
    const t = new RecordingTransport();
    const lease = makeLease({ playbook: playbook("    - ansible.builtin.command: sleep 30\n"), hosts: local }, { heartbeatIntervalMs: 200 });
    const session = new Session(lease, { transport: t, executor: { workRoot: work.dir } });
    const done = session.run();
    while (!t.statusReports.some((r) => r.status === "RUNNING")) await new Promise((r) => setTimeout(r, 50));
    t.command = "kill";
    const result = await done;
    expect(result.status).toBe("KILLED");
    expect(t.statusReports.at(-1)).toMatchObject({ status: "KILLED", attempt: lease.attempt });
    expect(trackedLeftovers()).toEqual([]);
  });

  it("abandons the run on 409 abandon, and reports nothing after", async () => {
    const t = new RecordingTransport();
    t.heartbeat = async () => {
      throw new ApiError("409 not yours", 409, { command: "abandon" });
    };
    const lease = makeLease({ playbook: playbook("    - ansible.builtin.command: sleep 30\n"), hosts: local }, { heartbeatIntervalMs: 300 });
    const result = await new Session(lease, { transport: t, executor: { workRoot: work.dir } }).run();
    expect(result.abandoned).toBe(true);
    expect(t.statusReports.every((r) => !["SUCCESS", "FAILURE", "KILLED", "STOPPED"].includes(r.status ?? ""))).toBe(true);
    expect(trackedLeftovers()).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });
});
