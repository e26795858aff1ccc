// The lease and heartbeat loops and their retry policy, driven by in-process calls; the agent's
// shutdown escalation; the sweep of a dead agent's processes.
import { spawn, spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { Agent, EXIT } from "../src/agent.ts";
import { ApiClient, ApiError } from "../src/api-client.ts";
import { isAlive, killOrphans, TRACKING_ENV, workRootTag } from "../src/process-group.ts";
import { heartbeatLoop } from "../src/loops/heartbeat.ts";
import { leaseLoop } from "../src/loops/lease.ts";
import { Backoff, jitter, sleep } from "../src/retry.ts";
import type { Lease } from "../src/types.ts";
import { b64, makeLease, trackedLeftovers, workRoot } from "./helpers.ts";

const work = workRoot();
afterAll(() => work.remove());

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

describe("heartbeat loop and Retry-After", () => {
  it("never waits longer than its interval, whatever Retry-After asks (the lease depends on it)", async () => {
    const times: number[] = [];
    await heartbeatLoop({
      intervalMs: 300,
      signal: new AbortController().signal,
      send: async () => {
        times.push(Date.now());
        if (times.length === 1) throw new ApiError("429 slow down", 429, null, 60_000);
        throw new ApiError("409", 409, { command: "abandon" });
      },
    });
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeLessThan(10_000); // not the 60 s asked for
  });
});

describe("agent shutdown", () => {
  it("stops a running execution after the grace period, and kills it when the stop does not end it in time (exit 5)", async () => {
    // The protocol calls answered in-process: one lease, then nothing.
    const client = new ApiClient({ url: "http://127.0.0.1:9", version: "test" });
    const statuses: string[] = [];
    let leased = false;
    client.lease = async (_body, signal) => {
      if (!leased) {
        leased = true;
        return makeLease({
          playbook: b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: long\n      ansible.builtin.command: sleep 29.5\n"),
          hosts: [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }],
        });
      }
      await sleep(25_000, signal);
      return null;
    };
    client.heartbeat = async () => ({ command: null });
    client.events = async (_id, body) => ({ acceptedThrough: body.events.at(-1)!.seq, command: null });
    client.status = async (_id, body) => {
      if (body.status) statuses.push(body.status);
      return { status: body.status, command: null };
    };
    client.release = async () => {};
    const agent = new Agent({
      client,
      concurrency: 1,
      pollWaitMs: 25_000,
      heartbeatIntervalMs: 1000,
      shutdownGraceMs: 300,
      stopTimeoutMs: 1000,
      executor: { workRoot: work.dir },
    });
    const run = agent.run();
    while (!statuses.includes("RUNNING")) await sleep(50);
    const t0 = Date.now();
    agent.shutdown("SIGTERM");
    expect(await run).toBe(EXIT.KILLED);
    expect(Date.now() - t0).toBeLessThan(20_000); // not the task's 29.5 s
    expect(statuses).toEqual(["RUNNING", "KILLED"]);
    expect(trackedLeftovers()).toEqual([]);
    expect(work.leftovers()).toEqual([]);
  });
});

describe("agent concurrency", () => {
  it("runs up to its concurrency at once and asks only for the slots it has free", async () => {
    const client = new ApiClient({ url: "http://127.0.0.1:9", version: "test" });
    const asked: number[] = [];
    const running = new Set<string>();
    let maxRunning = 0;
    const finished: string[] = [];
    let n = 0;
    const stop = new AbortController();
    client.lease = async (body, signal) => {
      asked.push(body.capacity);
      if (n < 3) {
        n++;
        return makeLease(
          {
            playbook: b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: sleep 1.5\n"),
            hosts: [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }],
          },
          { executionId: `conc-${process.pid}-${n}` },
        );
      }
      await sleep(25_000, signal);
      return null;
    };
    client.heartbeat = async () => ({ command: null });
    client.events = async (_id, body) => ({ acceptedThrough: body.events.at(-1)!.seq, command: null });
    client.status = async (id, body) => {
      if (body.status === "RUNNING") running.add(id);
      maxRunning = Math.max(maxRunning, running.size);
      if (body.status === "SUCCESS") {
        running.delete(id);
        finished.push(id);
        if (finished.length === 3) stop.abort();
      }
      return { status: body.status, command: null };
    };
    client.release = async () => {};
    const agent = new Agent({
      client,
      concurrency: 2,
      pollWaitMs: 25_000,
      heartbeatIntervalMs: 1000,
      shutdownGraceMs: 60_000,
      executor: { workRoot: work.dir },
    });
    const run = agent.run();
    await new Promise<void>((r) => stop.signal.addEventListener("abort", () => r(), { once: true }));
    agent.shutdown("SIGTERM");
    expect(await run).toBe(EXIT.OK);
    expect(finished).toHaveLength(3);
    expect(maxRunning).toBe(2);
    // Two slots, then one (the first lease took one), then one again whenever one freed up; never 0 or 3.
    expect(asked.slice(0, 2)).toEqual([2, 1]);
    expect(asked.every((c) => c === 1 || c === 2)).toBe(true);
  });
});

describe("orphans of a dead agent", () => {
  it("are killed by the next agent of the same work directory, and only by it", async () => {
    // A pid that is certainly dead: a process that has exited.
    const dead = spawnSync("true").pid!;
    expect(isAlive(dead)).toBe(false);
    const start = (root: string) =>
      spawn("sleep", ["31.25"], { detached: true, stdio: "ignore", env: { ...process.env, [TRACKING_ENV]: `${dead}:${workRootTag(root)}:exec-1:1:abcd` } });
    const mine = start(work.dir);
    const other = start(work.dir + "-another-agent");
    try {
      await sleep(200);
      expect(await killOrphans(work.dir)).toBe(1);
      await sleep(200);
      expect(isAlive(mine.pid!)).toBe(false);
      expect(isAlive(other.pid!)).toBe(true);
    } finally {
      other.kill("SIGKILL");
      mine.kill("SIGKILL");
    }
  });
});
