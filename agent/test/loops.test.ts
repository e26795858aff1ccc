// The lease and heartbeat loops and their retry policy, driven by in-process calls.
import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api-client.ts";
import { heartbeatLoop } from "../src/loops/heartbeat.ts";
import { leaseLoop } from "../src/loops/lease.ts";
import { Backoff, jitter } from "../src/retry.ts";
import type { Lease } from "../src/types.ts";
import { makeLease } from "./helpers.ts";

describe("backoff", () => {
  it("doubles from 0.5 s to a 30 s cap, with jitter that never drops below half the step", () => {
    const low = new Backoff({ random: () => 0 });
    const high = new Backoff({ random: () => 0.999999 });
    const lows = Array.from({ length: 9 }, () => low.next());
    const highs = Array.from({ length: 9 }, () => high.next());
    expect(lows).toEqual([250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
    expect(highs).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    low.reset();
    expect(low.next()).toBe(250);
    expect(jitter(1000, 0.1, () => 0)).toBe(900);
    expect(jitter(1000, 0.1, () => 1)).toBe(1100);
  });
});

describe("lease loop", () => {
  it("retries network errors and 5xx with backoff, hands over leases, asks only with a free slot", async () => {
    const stop = new AbortController();
    const calls: { running: string[]; capacity: number }[] = [];
    const got: Lease[] = [];
    const running: string[] = [];
    let n = 0;
    await leaseLoop({
      lease: async (body) => {
        calls.push(body);
        n++;
        if (n === 1) throw new ApiError("fetch failed", 0);
        if (n === 2) throw new ApiError("503", 503);
        if (n === 3) return null; // 204: nothing came
        if (n === 4) return makeLease({}, { executionId: "e-1" });
        stop.abort();
        return null;
      },
      running: () => running,
      capacity: () => 2 - running.length,
      waitForSlot: async () => {},
      onLease: (l) => {
        got.push(l);
        running.push(l.executionId);
      },
      onFatal: () => {
        throw new Error("not fatal");
      },
      pollWaitMs: 25_000,
      signal: stop.signal,
      backoff: new Backoff({ initialMs: 5, maxMs: 10 }),
    });
    expect(got.map((l) => l.executionId)).toEqual(["e-1"]);
    expect(calls.at(-1)).toEqual({ running: ["e-1"], capacity: 1, waitMs: 25_000 });
  });

  it("ends on 401 (and any other 4xx) without retrying", async () => {
    const fatal: number[] = [];
    let calls = 0;
    await leaseLoop({
      lease: async () => {
        calls++;
        throw new ApiError("401", 401);
      },
      running: () => [],
      capacity: () => 1,
      waitForSlot: async () => {},
      onLease: () => {},
      onFatal: (e) => fatal.push(e.status),
      pollWaitMs: 1000,
      signal: new AbortController().signal,
    });
    expect(calls).toBe(1);
    expect(fatal).toEqual([401]);
  });

  it("waits for a slot instead of asking when full", async () => {
    const stop = new AbortController();
    let asked = 0;
    let waited = 0;
    await leaseLoop({
      lease: async () => {
        asked++;
        return null;
      },
      running: () => ["a"],
      capacity: () => 0,
      waitForSlot: async () => {
        if (++waited === 3) stop.abort();
      },
      onLease: () => {},
      onFatal: () => {},
      pollWaitMs: 1000,
      signal: stop.signal,
    });
    expect(asked).toBe(0);
    expect(waited).toBe(3);
  });
});

describe("heartbeat loop", () => {
  it("beats on its interval, passes commands on, retries sooner after a failure, ends on abandon", async () => {
    const stop = new AbortController();
    const times: number[] = [];
    const commands: string[] = [];
    const fatal: ApiError[] = [];
    const t0 = Date.now();
    await heartbeatLoop({
      intervalMs: 600,
      signal: stop.signal,
      send: async () => {
        times.push(Date.now() - t0);
        if (times.length === 2) throw new ApiError("fetch failed", 0);
        if (times.length === 3) return { command: "stop" };
        if (times.length === 4) throw new ApiError("409", 409, { command: "abandon" });
        return { command: null };
      },
      onCommand: (c) => commands.push(c),
      onFatal: (e) => fatal.push(e),
    });
    expect(times).toHaveLength(4);
    expect(times[0]).toBeLessThan(300); // at once: the first beat acknowledges the lease
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(500); // then on the interval (600 ms ± 10 %)
    expect(times[2]! - times[1]!).toBeLessThan(times[1]! - times[0]!); // the retry came sooner
    expect(commands).toEqual(["stop"]);
    expect(fatal.map((e) => e.abandon)).toEqual([true]);
  });
});
