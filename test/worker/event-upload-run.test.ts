import { runInDurableObject } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentEvent } from "../../worker/schemas/execution";
import { AGENT, executionIn, newJob, object, ref, stub } from "./execution-fixtures";
import { RECEIVER, Receiver } from "./webhook-fixtures";

/**
 * A batch in order is stored from its JSON text in one statement (`uploadEventRun`,
 * worker/execution/event-log.ts `storeRun`); any other batch one event at a time (`uploadEvents`).
 * Both must store the same thing, and the text path must fall back wherever it may not apply.
 */
const A = "ev-run";
const receiver = new Receiver();
beforeAll(() => receiver.install());
afterAll(() => receiver.uninstall());

const odd: Omit<AgentEvent, "seq">[] = [
  { timestamp: 1, event_type: "playbook_on_start", stdout: "PLAY [all]\n" },
  {
    timestamp: 2,
    event_type: "runner_on_ok",
    host: "web1",
    task: "t",
    play: "p",
    stdout: "ok: [web1]\n",
    data: { changed: false, n: 1.5, big: 12345678901, s: 'é ✓ "q"' },
  },
  { timestamp: 3, event_type: "runner_on_ok", host: null, task: null, play: null, data: null },
  { timestamp: 4, event_type: "verbose", data: "just text" },
  { timestamp: 5, event_type: "runner_on_failed", host: "web2", data: [1, { x: [] }, true] },
  { timestamp: 6, event_type: "verbose", stdout: "", data: {} },
];
const batch = (from: number, n: number): AgentEvent[] =>
  Array.from({ length: n }, (_, i) => ({ ...odd[(from + i) % odd.length]!, seq: from + i }) as AgentEvent);

async function stored(id: string) {
  const page = await stub(id).events(undefined, 0, 0, 100);
  if (!("results" in page)) throw new Error("no page");
  return page.results.filter((e) => !e.event_type.startsWith("execution_")).map(({ id: _id, execution_id: _e, sequence: _s, ...rest }) => rest);
}

async function run(id: string, events: AgentEvent[]) {
  return stub(id).uploadEventRun(AGENT, await ref(id), { json: JSON.stringify(events), first: events[0]!.seq, count: events.length });
}

describe("a batch in order, stored from its text", () => {
  it("stores exactly what the event-by-event path stores (odd data, nulls, missing fields)", async () => {
    const jobId = await newJob(A);
    const [byText, byEvent] = [await executionIn(A, jobId, "RUNNING"), await executionIn(A, jobId, "RUNNING")];
    for (const [from, n] of [
      [1, 4],
      [5, 6],
      [11, 1],
    ] as const) {
      expect(await run(byText, batch(from, n))).toMatchObject({ acceptedThrough: from + n - 1 });
      expect(await stub(byEvent).uploadEvents(AGENT, { ...(await ref(byEvent)), events: batch(from, n) })).toMatchObject({ acceptedThrough: from + n - 1 });
    }
    const text = await stored(byText);
    expect(text).toHaveLength(11);
    expect(text).toEqual(await stored(byEvent));
    expect(JSON.parse(text[1]!.data!)).toEqual(odd[2 % odd.length]!.data ?? null);
  });

  it("falls back where it may not apply: a repeated batch, a batch ahead of a gap (held, then released by the run that fills it)", async () => {
    const id = await executionIn(A, await newJob(A), "RUNNING");
    expect(await run(id, batch(5, 2))).toMatchObject({ acceptedThrough: 0 }); // ahead of the gap: held
    expect(await run(id, batch(1, 4))).toMatchObject({ acceptedThrough: 6 }); // fills it, releases 5 and 6
    expect(await run(id, batch(1, 4))).toMatchObject({ acceptedThrough: 6 }); // a retry: nothing twice
    const events = await stored(id);
    expect(events.map((e) => e.timestamp)).toEqual([2, 3, 4, 5, 6, 1]);
  });

  it("a callback owed events gets each of them: the text is stored event by event then", async () => {
    const id = await executionIn(A, await newJob(A, { callbacks: [{ url: RECEIVER, level: "DEBUG" }] }), "RUNNING");
    expect(await run(id, batch(1, 3))).toMatchObject({ acceptedThrough: 3 });
    // Every stored event (the status events before, and these three) was sequenced for the callback.
    const sequenced = await runInDurableObject(object(id), (o) => (o as unknown as { s: { webhookSeq: Record<string, number> } }).s.webhookSeq[RECEIVER]);
    expect(sequenced).toBe(await stub(id).eventCount());
    expect(await stub(id).eventCount()).toBeGreaterThan(3);
  });
});
