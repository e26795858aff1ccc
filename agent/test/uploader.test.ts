// The uploader: numbering, batching by count/size/time, resending from acceptedThrough after
// failures without duplicates, commands from answers, and refused batches never leaving a gap;
// the backlog spooled to disk beyond its memory cap, and bounded there.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ApiError } from "../src/api-client.ts";
import { Backoff } from "../src/retry.ts";
import type { EventInput, WireEvent } from "../src/types.ts";
import { MAX_BATCH_EVENTS, Uploader } from "../src/uploader.ts";
import { RecordingTransport } from "./helpers.ts";

const ev = (i: number, stdout = `line ${i}\n`): EventInput => ({
  timestamp: 1000 + i,
  event_type: "verbose",
  play: null,
  task: null,
  host: null,
  stdout,
  data: {},
});
const fast = () => new Backoff({ initialMs: 5, maxMs: 20 });

function uploaderFor(t: RecordingTransport, extra: Partial<ConstructorParameters<typeof Uploader>[0]> = {}) {
  return new Uploader({ send: (events) => t.events({ attempt: 1, events }), backoff: fast(), ...extra });
}

describe("uploader", () => {
  it("numbers events from 1 and sends them in batches of at most 2,000 (MAX_BATCH_EVENTS)", async () => {
    const t = new RecordingTransport();
    const u = uploaderFor(t);
    for (let i = 1; i <= 4200; i++) u.push(ev(i));
    await u.flush();
    await u.stop();
    const batches = t.bodies.filter((b) => b.kind === "events").map((b) => JSON.parse(b.json).events as WireEvent[]);
    expect(MAX_BATCH_EVENTS).toBe(2000);
    expect(batches.map((b) => b.length)).toEqual([2000, 2000, 200]);
    expect(t.storedEvents().map((e) => e.seq)).toEqual(Array.from({ length: 4200 }, (_, i) => i + 1));
    expect(batches.every((b) => b.every((e, i) => i === 0 || e.seq === b[i - 1]!.seq + 1))).toBe(true);
  });

  it("keeps each batch under the byte limit", async () => {
    const t = new RecordingTransport();
    const u = uploaderFor(t, { maxBytes: 100_000 });
    for (let i = 1; i <= 10; i++) u.push(ev(i, "x".repeat(30_000)));
    await u.flush();
    await u.stop();
    const sizes = t.bodies.filter((b) => b.kind === "events").map((b) => Buffer.byteLength(b.json));
    expect(sizes.length).toBeGreaterThan(3);
    for (const s of sizes) expect(s).toBeLessThan(100_000 + 1000);
    expect(t.storedEvents()).toHaveLength(10);
  });

  it("waits about 250 ms to gather a batch, not longer", async () => {
    const t = new RecordingTransport();
    const u = uploaderFor(t);
    const t0 = Date.now();
    u.push(ev(1));
    setTimeout(() => u.push(ev(2)), 50);
    while (!t.stored.size) await new Promise((r) => setTimeout(r, 10));
    const waited = Date.now() - t0;
    expect(t.stored.size).toBe(2); // both in one batch
    expect(waited).toBeGreaterThanOrEqual(200);
    expect(waited).toBeLessThan(2000);
    await u.stop();
  });

  it("sends a steady stream about every 250 ms, not as back-to-back uploads of what arrived during the last one", async () => {
    const t = new RecordingTransport();
    // Each upload takes 40 ms, as over a network: events keep coming meanwhile.
    const u = uploaderFor(t, { send: async (events) => (await new Promise((r) => setTimeout(r, 40)), t.events({ attempt: 1, events })) });
    let i = 0;
    const feed = setInterval(() => u.push(ev(++i)), 5);
    await new Promise((r) => setTimeout(r, 1500));
    clearInterval(feed);
    await u.flush();
    await u.stop();
    // 1.5 s at one batch per ~250 ms is ~6 (+ the flush); back to back at 40 ms each it was ~30. A
    // slow machine only makes fewer.
    expect(u.batches).toBeLessThanOrEqual(10);
    expect(t.storedEvents().map((e) => e.seq)).toEqual(Array.from({ length: i }, (_, k) => k + 1));
  });

  it("retries after 5xx and lost answers, and the server ends with each event exactly once", async () => {
    const t = new RecordingTransport();
    t.failEvents = 2;
    t.loseEventAnswers = 2;
    const u = uploaderFor(t, { maxEvents: 7 });
    for (let i = 1; i <= 30; i++) u.push(ev(i));
    await u.flush();
    await u.stop();
    expect(t.storedEvents().map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const sent = t.bodies.filter((b) => b.kind === "events").flatMap((b) => JSON.parse(b.json).events.map((e: WireEvent) => e.seq));
    expect(sent.length).toBeGreaterThan(30); // some were sent twice…
    expect(new Set(t.storedEvents().map((e) => e.stdout)).size).toBe(30); // …and stored once
  });

  it("resends from acceptedThrough when the server holds back a gap", async () => {
    const stored: WireEvent[] = [];
    let calls = 0;
    const u = new Uploader({
      backoff: fast(),
      maxEvents: 5,
      send: async (events) => {
        calls++;
        // The first answer claims only 2 stored (as if the rest waited for a gap): the agent resends 3…
        if (calls === 1) {
          stored.push(...events.slice(0, 2));
          return { acceptedThrough: 2, command: null };
        }
        for (const e of events) if (!stored.some((s) => s.seq === e.seq)) stored.push(e);
        return { acceptedThrough: Math.max(...stored.map((s) => s.seq)), command: null };
      },
    });
    for (let i = 1; i <= 5; i++) u.push(ev(i));
    await u.flush();
    await u.stop();
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("hands commands from answers on and stops on 409 abandon", async () => {
    const t = new RecordingTransport();
    t.command = "stop";
    const commands: string[] = [];
    const fatal: ApiError[] = [];
    const u = uploaderFor(t, { onCommand: (c) => commands.push(c), onFatal: (e) => fatal.push(e) });
    u.push(ev(1));
    await u.flush();
    expect(commands).toEqual(["stop"]);
    const abandoning = new Uploader({
      backoff: fast(),
      send: async () => {
        throw new ApiError("409", 409, { command: "abandon" });
      },
      onFatal: (e) => fatal.push(e),
    });
    abandoning.push(ev(1));
    await abandoning.flush(); // resolves: nothing more will be sent
    expect(fatal.map((e) => e.abandon)).toEqual([true]);
    await Promise.all([u.stop(), abandoning.stop()]);
  });

  it("splits a batch the server refuses, and replaces a single refused event by a placeholder with its seq", async () => {
    const accepted: WireEvent[] = [];
    const u = new Uploader({
      backoff: fast(),
      send: async (events) => {
        if (events.length > 2 || events.some((e) => e.stdout.includes("poison"))) throw new ApiError("400 bad", 400);
        accepted.push(...events);
        return { acceptedThrough: events.at(-1)!.seq, command: null };
      },
    });
    u.push(ev(1));
    u.push(ev(2));
    u.push(ev(3, "poison\n"));
    u.push(ev(4));
    await u.flush();
    await u.stop();
    expect(accepted.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(accepted[2]!.stdout).toContain("could not be uploaded");
  });
});

describe("uploader spool", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const spoolDir = () => {
    const d = mkdtempSync(join(tmpdir(), "rnr-spool-"));
    dirs.push(d);
    return join(d, "spool");
  };
  /** Refuses every upload (the API unreachable) while `down`. */
  function partitioned(t: RecordingTransport) {
    const state = { down: true, accepted: [] as number[] };
    const send = async (events: WireEvent[]) => {
      if (state.down) throw new ApiError("POST events: fetch failed (ECONNREFUSED)", 0);
      state.accepted.push(...events.map((e) => e.seq));
      return t.events({ attempt: 1, events });
    };
    return { state, send };
  }

  it("keeps the backlog beyond the memory cap in 0600 files of its directory, uploads it all once, in order, when the API is back, and removes them", async () => {
    const t = new RecordingTransport();
    const p = partitioned(t);
    const dir = spoolDir();
    const u = new Uploader({ send: p.send, backoff: fast(), memoryEvents: 100, spool: { dir, name: "exec-1.1.lease" } });
    const N = 3000;
    for (let i = 1; i <= N; i++) u.push(ev(i, `${"x".repeat(2000)} ${i}\n`)); // ~6 MB: beyond the write buffer
    expect(u.pending).toBe(N);
    const files = u.spoolFiles;
    expect(files.length).toBeGreaterThan(0);
    expect(readdirSync(dir).map((f) => join(dir, f))).toEqual(files);
    for (const f of files) expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    await new Promise((r) => setTimeout(r, 200)); // failing meanwhile
    p.state.down = false;
    u.retryNow();
    await u.flush();
    const stored = t.storedEvents();
    expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(stored.every((e, i) => e.stdout.endsWith(` ${i + 1}\n`))).toBe(true);
    expect(p.state.accepted).toEqual(stored.map((e) => e.seq)); // each sent once it got through
    expect(readdirSync(dir)).toEqual([]); // read back: nothing left on disk
    await u.stop();
  });

  it("drops output lines (said by markers), never task results, once the spool reaches its bound; stop removes what is left", async () => {
    const t = new RecordingTransport();
    const p = partitioned(t);
    const dir = spoolDir();
    const u = new Uploader({ send: p.send, backoff: fast(), memoryEvents: 10, spool: { dir, name: "exec-2.1.lease", maxBytes: 1024 * 1024 } });
    const line = (i: number) => ev(i, `${"y".repeat(10_000)} ${i}\n`);
    const result = (i: number): EventInput => ({ ...ev(i, `ok: [web1] ${i}\n`), event_type: "runner_on_ok", host: "web1", task: `task ${i}` });
    for (let i = 1; i <= 300; i++) u.push(i % 50 === 0 ? result(i) : line(i)); // ~3 MB of output into a 1 MiB spool
    p.state.down = false;
    u.retryNow();
    await u.flush();
    const stored = t.storedEvents();
    expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1)); // no gap where lines were dropped
    expect(stored.filter((e) => e.event_type === "runner_on_ok").map((e) => e.task)).toEqual([50, 100, 150, 200, 250, 300].map((i) => `task ${i}`));
    const markers = stored.filter((e) => (e.data as { runner_agent?: boolean }).runner_agent);
    expect(markers).toHaveLength(2);
    expect(markers[0]!.stdout).toContain("spool is full");
    const dropped = (markers[1]!.data as { dropped_events: number }).dropped_events;
    expect(dropped).toBeGreaterThan(100);
    expect(stored.filter((e) => e.event_type === "verbose").length - 2 + dropped).toBe(300 - 6);
    // The backlog of a run that ends without the API (its lease lost) leaves nothing on disk.
    p.state.down = true;
    for (let i = 1; i <= 500; i++) u.push(line(i));
    expect(readdirSync(dir).length).toBeGreaterThan(0);
    await u.stop();
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("uploader: holding the last events for the final status", () => {
  it("waits for the upload on its way (its command still counts), then holds the rest: nothing is sent until delivered", async () => {
    const t = new RecordingTransport();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const onItsWay = new Promise<void>((r) => (entered = r));
    let commands = 0;
    const u = uploaderFor(t, {
      intervalMs: 10,
      send: async (events) => {
        entered();
        await gate; // the first upload is slow
        return { ...(await t.events({ attempt: 1, events })), command: "stop" };
      },
      onCommand: () => void commands++,
    });
    for (let i = 1; i <= 3; i++) u.push(ev(i));
    await onItsWay; // the batch of 3 is on its way (held at the gate)
    const holding = u.hold();
    for (let i = 4; i <= 5; i++) u.push(ev(i));
    release();
    expect(await holding).toBe(true);
    expect(commands).toBe(1); // the answer of the upload on its way was taken in first
    const { events } = u.held();
    expect(events.map((e) => e.seq)).toEqual([4, 5]);
    await new Promise((r) => setTimeout(r, 100)); // well past the 10 ms interval: still nothing sent
    expect(t.bodies.filter((b) => b.kind === "events")).toHaveLength(1);
    u.delivered(5);
    expect(u.pending).toBe(0);
    await u.flush(); // resolves at once: nothing left
    await u.stop();
    expect(t.bodies.filter((b) => b.kind === "events")).toHaveLength(1);
  });

  it("does not hold more than one call takes: sending goes on, and a flush delivers everything", async () => {
    const t = new RecordingTransport();
    const u = uploaderFor(t, { maxEvents: 10 });
    for (let i = 1; i <= 25; i++) u.push(ev(i));
    expect(await u.hold()).toBe(false);
    await u.flush();
    await u.stop();
    expect(t.storedEvents().map((e) => e.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });
});
