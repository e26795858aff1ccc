// One execution wired to its transport: heartbeats on their own timer, commands from answers,
// 409 abandon, and every event uploaded before the terminal status.
import { describe, expect, it, afterAll } from "vitest";
import { ApiError, type EventsAnswer } from "../src/api-client.ts";
import { Session } from "../src/session.ts";
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
    const lease = makeLease({ playbook: playbook("    - ansible.builtin.debug:\n        msg: one\n    - ansible.builtin.debug:\n        msg: two\n"), hosts: local }, { heartbeatIntervalMs: 200 });
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
    expect(JSON.parse(t.bodies.find((b) => b.kind === "heartbeat")!.json)).toEqual({ attempt: lease.attempt });
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
