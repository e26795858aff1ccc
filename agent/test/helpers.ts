// Shared by the agent tests: leases, an in-process sink and a recording transport.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiError, type EventsAnswer, type HeartbeatAnswer, type StatusAnswer } from "../src/api-client.ts";
import type { RunSink } from "../src/run.ts";
import { TRACKING_ENV } from "../src/process-group.ts";
import { processesWithEnv, type ProcessInfo } from "../../test/fixtures/processes.ts";
import type { AgentCommand, EventInput, Lease, LeaseJob, StatusReport, WireEvent } from "../src/types.ts";
import type { ExecutionTransport } from "../src/session.ts";

export const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

let counter = 0;
export function makeLease(job: Partial<LeaseJob>, extra: Partial<Lease> = {}): Lease {
  counter++;
  return {
    executionId: `exec-${process.pid}-${counter}-${Date.now().toString(36)}`,
    attempt: 1,
    leaseId: `lease-${counter}`,
    accountAlias: "acme",
    jobId: "job-1",
    leaseExpiresAt: Date.now() + 30_000,
    heartbeatIntervalMs: 5000,
    deadline: Date.now() + 3_600_000,
    job: { name: "test", executionTtl: 60, hosts: [], properties: {}, playbookTags: [], useDynamicInventory: false, ...job },
    inventory: null,
    limit: null,
    check: false,
    diff: false,
    secrets: [],
    ...extra,
  };
}

/** A fresh work root for an executor; `leftovers()` lists what remains in it. */
export function workRoot(): { dir: string; leftovers(): string[]; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "rnr-work-"));
  return { dir, leftovers: () => readdirSync(dir), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Collects what the executor hands over, numbered as the uploader would. */
export class MemorySink implements RunSink {
  events: WireEvent[] = [];
  reports: StatusReport[] = [];
  private listeners: ((e: WireEvent) => void)[] = [];

  event(e: EventInput): void {
    const w = { seq: this.events.length + 1, ...e };
    this.events.push(w);
    for (const l of this.listeners) l(w);
  }
  async report(r: StatusReport): Promise<void> {
    this.reports.push(r);
  }
  async flush(): Promise<void> {}

  on(fn: (e: WireEvent) => void): void {
    this.listeners.push(fn);
  }
  waitFor(pred: (e: WireEvent) => boolean, timeoutMs = 30_000): Promise<WireEvent> {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("event did not come")), timeoutMs);
      this.on((e) => {
        if (pred(e)) {
          clearTimeout(t);
          resolve(e);
        }
      });
    });
  }
  types(): string[] {
    return this.events.map((e) => e.event_type);
  }
  log(): string {
    return this.events.map((e) => e.stdout).join("");
  }
  statuses(): string[] {
    return this.reports.filter((r) => r.status).map((r) => r.status!);
  }
}

/**
 * The protocol calls of one execution, kept in-process: every request body exactly as it would be
 * sent (JSON text), events stored by seq without duplicates as the protocol says the server does.
 */
export class RecordingTransport implements ExecutionTransport {
  bodies: { kind: string; json: string }[] = [];
  stored = new Map<number, WireEvent>();
  statusReports: (StatusReport & { attempt: number })[] = [];
  heartbeats = 0;
  releases = 0;
  /** Answered in the next heartbeat/upload/status answer. */
  command: AgentCommand = null;
  /** Throw this many times before accepting events (transient outage). */
  failEvents = 0;
  /** Store, then fail the answer (a lost response): the agent must not duplicate on retry. */
  loseEventAnswers = 0;

  private through(): number {
    let n = 0;
    while (this.stored.has(n + 1)) n++;
    return n;
  }
  async events(body: { attempt: number; events: WireEvent[] }): Promise<EventsAnswer> {
    this.bodies.push({ kind: "events", json: JSON.stringify(body) });
    if (this.failEvents > 0) {
      this.failEvents--;
      throw new ApiError("POST events: 503", 503);
    }
    for (const e of body.events) if (!this.stored.has(e.seq)) this.stored.set(e.seq, e);
    if (this.loseEventAnswers > 0) {
      this.loseEventAnswers--;
      throw new ApiError("POST events: fetch failed", 0);
    }
    return { acceptedThrough: this.through(), command: this.command };
  }
  /** Refuse (400) a status report that carries events, as an API refusing one of them would. */
  refuseReportEvents = false;
  async status(body: StatusReport & { attempt: number }): Promise<StatusAnswer> {
    this.bodies.push({ kind: "status", json: JSON.stringify(body) });
    if (body.events && this.refuseReportEvents) throw new ApiError("POST status: 400 events.0.data", 400);
    this.statusReports.push(body);
    // Its events are stored before the status, as the server does.
    if (!body.events) return { status: body.status, command: this.command };
    for (const e of body.events) if (!this.stored.has(e.seq)) this.stored.set(e.seq, e);
    return { status: body.status, command: this.command, acceptedThrough: this.through() };
  }
  async heartbeat(body: { attempt: number }): Promise<HeartbeatAnswer> {
    this.bodies.push({ kind: "heartbeat", json: JSON.stringify(body) });
    this.heartbeats++;
    return { leaseExpiresAt: Date.now() + 30_000, command: this.command };
  }
  async release(body: { attempt: number }): Promise<void> {
    this.bodies.push({ kind: "release", json: JSON.stringify(body) });
    this.releases++;
  }
  allBytes(): string {
    return this.bodies.map((b) => b.json).join("\n");
  }
  storedEvents(): WireEvent[] {
    return [...this.stored.values()].sort((a, b) => a.seq - b.seq);
  }
}

/** Processes still alive that carry a tracking id of this test process's executions (none should, after a run). */
export function trackedLeftovers(): ProcessInfo[] {
  return processesWithEnv(TRACKING_ENV, `${process.pid}:`);
}
