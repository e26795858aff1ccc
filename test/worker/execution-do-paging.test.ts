import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { AgentEvent } from "../../worker/schemas/execution";
import { api, token } from "./helpers";
import { AGENT, executionIn, newJob, ref, report, stub } from "./execution-fixtures";

/**
 * An execution with 100,000 events stays fast to page through (keyset paging on the object's
 * SQLite primary key). Timings are printed for bench/event-paging.md, never asserted.
 */
const ALIAS = "paging";
const N = 100_000;
const BATCH = 500;
let jobId: string;
let id: string;
let t: string;
const timings: Record<string, number> = {};

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const out = await fn();
  timings[name] = Math.round((performance.now() - t0) * 10) / 10;
  return out;
}

beforeAll(async () => {
  jobId = await newJob(ALIAS);
  t = await token([ALIAS], "viewer");
  id = await executionIn(ALIAS, jobId, "RUNNING"); // 4 events first: PENDING, why it waits, INITIALIZING, RUNNING
  await timed(`upload ${N} events (${N / BATCH} batches of ${BATCH})`, async () => {
    for (let from = 1; from <= N; from += BATCH) {
      const events: AgentEvent[] = [];
      for (let seq = from; seq < from + BATCH; seq++) {
        events.push({
          seq,
          timestamp: seq,
          event_type: "runner_on_ok",
          host: `web${seq % 50}`,
          task: `task ${seq >> 4}`,
          play: "site",
          stdout: `ok: [web${seq % 50}] task ${seq}\n`,
          data: { changed: false, seq },
        });
      }
      const r = await stub(id).uploadEvents(AGENT, { ...(await ref(id)), events });
      if (r.acceptedThrough !== from + BATCH - 1) throw new Error(`accepted ${r.acceptedThrough}`);
    }
  });
  await report(id, { status: "SUCCESS" });
}, 120_000);

describe(`paging ${N} events`, () => {
  it("answers any page by key range, in order", async () => {
    const total = N + 5; // + PENDING, its waiting reason, INITIALIZING, RUNNING, SUCCESS
    const first = await timed("API events page 0 (size 100)", () => api("GET", `/jobs/${ALIAS}/${jobId}/executions/${id}/events?size=100`, { token: t }));
    expect(first.json.totalSize).toBe(total);
    expect(first.json.results[0].sequence).toBe(1);
    const middle = await timed("API events page 500 (size 100)", () =>
      api("GET", `/jobs/${ALIAS}/${jobId}/executions/${id}/events?size=100&page=500`, { token: t }),
    );
    expect(middle.json.results.map((e: { sequence: number }) => e.sequence)).toEqual(Array.from({ length: 100 }, (_, i) => 50_001 + i));
    expect(middle.json.results[0].data.seq).toBe(50_001 - 4);
    const last = await timed("API events after=99,950 (size 100)", () =>
      api("GET", `/jobs/${ALIAS}/${jobId}/executions/${id}/events?after=99950&size=100`, { token: t }),
    );
    expect(last.json.totalSize).toBe(total - 99_950);
    expect(last.json.results.at(-1).event_type).toBe("execution_status");
    const deep = await timed("RPC events page 999 (size 100)", () => stub(id).events(undefined, 0, 999, 100));
    expect(deep.results[0]!.sequence).toBe(99_901);
  });

  it("streams the whole log without holding it in memory", async () => {
    const text = await timed("API plain-text log, whole (streamed in 256 KiB chunks)", async () => {
      const r = await SELF.fetch(`http://runner.test/jobs/${ALIAS}/${jobId}/executions/${id}/log`, { headers: { authorization: `Bearer ${t}` } });
      return r.text();
    });
    expect(text.startsWith("[runner] execution PENDING\n")).toBe(true);
    expect(text.endsWith("ok: [web0] task 100000\n[runner] execution SUCCESS\n")).toBe(true);
    expect(text.split("\n").length - 1).toBe(N + 5);
    timings["log size (bytes)"] = text.length;
  });

  it("prints the measurements", () => {
    console.log(`\nevent paging (${N} events, workerd via vitest-pool, this machine):`);
    for (const [k, v] of Object.entries(timings)) console.log(`  ${k}: ${v}${k.includes("bytes") ? "" : " ms"}`);
    expect(Object.keys(timings).length).toBeGreaterThan(4);
  });
});
