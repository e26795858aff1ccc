import { describe, expect, it } from "vitest";
import { AgentEvent, isAgentEvent } from "../../worker/schemas/execution";
import { call, execution, held, lease, newAgent, newExecution, newJob } from "./agent-fixtures";

/**
 * An upload's events are checked by hand (`isAgentEvent`, worker/schemas/execution.ts) and only
 * the ones it refuses go through the zod schema: the hand check must agree with the schema on
 * every event, and each bad field is still a 400 naming it.
 */
const fields = (r: { json: any }) => (r.json.errors as { field: string }[]).map((e) => e.field).sort();

const good = { seq: 1, timestamp: 1, event_type: "runner_on_ok", host: "web1", task: "t", play: "p", stdout: "ok\n", data: { changed: false } };
const deep = (n: number): unknown => (n === 0 ? 1 : { x: deep(n - 1) });

/** One bad value per field, each under the field it must be reported as. */
const BAD: [string, Record<string, unknown>][] = [
  ["seq", { seq: 0 }],
  ["seq", { seq: 1.5 }],
  ["seq", { seq: "1" }],
  ["seq", { seq: undefined }],
  ["seq", { seq: 2 ** 53 }],
  ["timestamp", { timestamp: -1 }],
  ["timestamp", { timestamp: null }],
  ["event_type", { event_type: "Bad Type" }],
  ["event_type", { event_type: `a${"b".repeat(64)}` }],
  ["event_type", { event_type: 7 }],
  ["play", { play: "p".repeat(1025) }],
  ["task", { task: 12 }],
  ["host", { host: "h".repeat(256) }],
  ["stdout", { stdout: null }],
  ["stdout", { stdout: "x".repeat(1024 * 1024 + 1) }],
  ["data", { data: deep(129) }],
];

const ACCEPTED: Record<string, unknown>[] = [
  good,
  { seq: 1, timestamp: 0, event_type: "verbose" },
  { ...good, host: null, task: null, play: null, data: null },
  { ...good, data: [1, "x", { y: [] }] },
  { ...good, data: "text" },
  { ...good, data: deep(127) },
  { ...good, extra: "ignored" },
  { ...good, play: "p".repeat(1024), host: "h".repeat(255), event_type: `a${"b".repeat(63)}` },
];

describe("the hand check of uploaded events", () => {
  it("agrees with the AgentEvent schema on good, bad and odd events", () => {
    const cases: unknown[] = [...ACCEPTED, ...BAD.map(([, change]) => ({ ...good, ...change })), null, [], "event", 1, [good]];
    for (const e of cases) expect(isAgentEvent(e), JSON.stringify(e)?.slice(0, 120)).toBe(AgentEvent.safeParse(e).success);
    for (const e of ACCEPTED) expect(isAgentEvent(e)).toBe(true);
  });

  it("a bad field in any event of a batch is a 400 naming it (events.<index>.<field>); nothing is stored", async () => {
    const a = await newAgent("ev-check");
    const id = await newExecution("ev-check", await newJob("ev-check"));
    expect((await lease(a)).json.executionId).toBe(id);
    const url = `/agent/executions/${id}/events`;
    for (const [field, change] of BAD) {
      if (field === "stdout" && typeof change.stdout === "string") continue; // over the 1 MiB body limit: the check above covers it
      const r = await call(a, "POST", url, { ...held(id), events: [good, { ...good, seq: 2, ...change }] });
      expect(r.status, `${field}: ${JSON.stringify(change).slice(0, 60)}`).toBe(400);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
      expect(fields(r), JSON.stringify(change).slice(0, 60)).toEqual([`events.1.${field}`]);
    }
    const notObject = await call(a, "POST", url, { ...held(id), events: [good, "x"] });
    expect(fields(notObject)).toEqual(["events.1"]);
    expect((await execution(id)).status).toBe("INITIALIZING");
    const ok = await call(a, "POST", url, { ...held(id), events: [good, { ...good, seq: 2, extra: 1 }] });
    expect(ok.status).toBe(200);
    expect(ok.json.acceptedThrough).toBe(2);
  });
});
