// The end of a run in one request: when the lease says the API takes events in the status report
// (`reportEvents`), the events still unsent at the exit go with the final status.
import { afterAll, describe, expect, it } from "vitest";
import { Session } from "../src/session.ts";
import type { WireEvent } from "../src/types.ts";
import { b64, makeLease, RecordingTransport, trackedLeftovers, workRoot } from "./helpers.ts";

const work = workRoot();
afterAll(() => work.remove());
const local = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
// Nothing goes on the batch tick (a minute): what a run's end sends does not depend on the machine's speed.
const executor = { workRoot: work.dir };
const quiet = { uploadIntervalMs: 60_000 };
const twoTasks = b64(
  "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: one\n    - ansible.builtin.command: echo two\n",
);

/** The calls made, as `events` / `status:<STATUS>+<n events>`. */
function calls(t: RecordingTransport): string[] {
  return t.bodies
    .filter((b) => b.kind !== "heartbeat")
    .map((b) => {
      if (b.kind !== "status") return b.kind;
      const body = JSON.parse(b.json) as { status?: string; events?: WireEvent[] };
      return `status:${body.status ?? "repo"}${body.events ? `+${body.events.length}` : ""}`;
    });
}

function expectAllStoredOnce(t: RecordingTransport): void {
  const events = t.storedEvents();
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  expect(events.at(-1)!.event_type).toBe("playbook_on_stats");
}

describe("session: the final status with the last events (happy)", () => {
  it("sends the events still unsent at the exit with the final status, in one call, and nothing after it", async () => {
    const t = new RecordingTransport();
    const lease = makeLease({ playbook: twoTasks, hosts: local }, { reportEvents: true });
    const result = await new Session(lease, { transport: t, executor, ...quiet }).run();
    expect(result.status).toBe("SUCCESS");
    const seen = calls(t);
    const last = seen.at(-1)!;
    // Every event of the run went with it: none was uploaded on its own.
    expect(seen.filter((c) => c === "events")).toEqual([]);
    expect(last).toMatch(/^status:SUCCESS\+\d+$/);
    const final = JSON.parse(t.bodies.filter((b) => b.kind === "status").at(-1)!.json) as { events: WireEvent[]; attempt: number; leaseId: string };
    expect(final.events.at(-1)!.event_type).toBe("playbook_on_stats");
    expect({ attempt: final.attempt, leaseId: final.leaseId }).toEqual({ attempt: lease.attempt, leaseId: lease.leaseId });
    expectAllStoredOnce(t);
    expect(trackedLeftovers()).toEqual([]);
  });

  it("against an API that does not take them (no reportEvents in the lease): every event uploaded first, the status alone", async () => {
    const t = new RecordingTransport();
    const result = await new Session(makeLease({ playbook: twoTasks, hosts: local }), { transport: t, executor, ...quiet }).run();
    expect(result.status).toBe("SUCCESS");
    const seen = calls(t);
    expect(seen.at(-1)).toBe("status:SUCCESS");
    expect(seen.at(-2)).toBe("events");
    expectAllStoredOnce(t);
  });
});

describe("session: the final status with the last events (error)", () => {
  it("a 400 for the report with events costs nothing: the events go as uploads, then the status alone", async () => {
    const t = new RecordingTransport();
    t.refuseReportEvents = true;
    const lease = makeLease({ playbook: twoTasks, hosts: local }, { reportEvents: true });
    const result = await new Session(lease, { transport: t, executor, ...quiet }).run();
    expect(result.status).toBe("SUCCESS");
    const seen = calls(t);
    const refused = seen.findIndex((c) => /^status:SUCCESS\+/.test(c));
    expect(refused).toBeGreaterThanOrEqual(0);
    expect(seen.slice(refused + 1)).toEqual(["events", "status:SUCCESS"]);
    expect(t.statusReports.at(-1)).toMatchObject({ status: "SUCCESS" });
    expectAllStoredOnce(t);
  });
});
