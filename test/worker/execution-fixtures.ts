/** Shared steps for the executions tests: real routes, real Execution objects. */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeEach, expect, vi } from "vitest";
import { executionClient } from "../../worker/domain/execution-client";
import type { Execution } from "../../worker/index";
import type { LeaseRef, StatusReport } from "../../worker/schemas/execution";
import { api, token } from "./helpers";
import { playbookJob } from "./jobs-fixtures";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The Execution object as the Worker calls it (refusals thrown as ProblemErrors). */
export function stub(executionId: string) {
  return executionClient(env, executionId);
}

/** The raw Durable Object stub, for runInDurableObject / runDurableObjectAlarm. */
export function object(executionId: string) {
  return env.EXECUTION.get(env.EXECUTION.idFromName(executionId));
}

/** Runs the execution's alarm now. */
export const fire = (id: string) => runDurableObjectAlarm(object(id));

/**
 * A faked Date for every test of the file (it reaches the objects: they run in this isolate):
 * `t0()` is the test's start, `at(ms)` moves the clock to `ms` after it.
 */
export function fakeClock(): { t0: () => number; at: (ms: number) => void } {
  let t0 = 0;
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    t0 = Date.now();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  return { t0: () => t0, at: (ms) => vi.setSystemTime(t0 + ms) };
}

export async function newJob(alias: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await api("POST", `/jobs/${alias}`, { token: await token([alias], "admin"), body: playbookJob(extra) });
  expect(r.status, r.text).toBe(200);
  return r.json.id as string;
}

/** Starts the job through the API; answers the execution id. */
export async function start(alias: string, jobId: string, body?: unknown): Promise<string> {
  const r = await api("POST", `/jobs/${alias}/${jobId}/start`, { token: await token([alias], "user"), body });
  expect(r.status, r.text).toBe(200);
  expect(r.json.status).toBe("PENDING");
  return r.json.execution_id as string;
}

export const AGENT = "agent-1";

/**
 * The lease the object holds now, as its agent names it on every call (after the lease ended: the
 * one that ended it, so a retried terminal report can be tried).
 */
export function ref(id: string): Promise<LeaseRef> {
  return runInDurableObject(object(id), (_obj: Execution, state) => {
    const row = state.storage.sql.exec<{ json: string }>("SELECT json FROM state").toArray()[0];
    const s = JSON.parse(row!.json) as { attempt: number; leaseId: string | null; endedLeaseId?: string | null };
    return { attempt: s.attempt, leaseId: s.leaseId ?? s.endedLeaseId ?? "no-lease" };
  });
}

/** A status report from `agentId` naming the current lease (unless the body names another). */
export async function report(id: string, body: Omit<StatusReport, "attempt" | "leaseId"> & { attempt?: number; leaseId?: string }, agentId = AGENT) {
  return stub(id).report(agentId, { ...(await ref(id)), ...body } as StatusReport);
}

/** Brings a fresh execution of `jobId` into `status` through the same calls an agent and a user make. */
export async function executionIn(alias: string, jobId: string, status: string): Promise<string> {
  const id = await start(alias, jobId);
  const s = stub(id);
  const scope = { accountAlias: alias, jobId };
  const lease = async () => expect(await s.grantLease(AGENT)).not.toBeNull();
  const running = async () => {
    await lease();
    await report(id, { status: "RUNNING" });
  };
  switch (status) {
    case "PENDING":
      break;
    case "INITIALIZING":
      await lease();
      break;
    case "RUNNING":
      await running();
      break;
    case "STOPPING":
      await running();
      await s.stop(scope, 0);
      break;
    case "KILLING":
      await running();
      await s.kill(scope);
      break;
    case "SUCCESS":
      await running();
      await report(id, { status: "SUCCESS" });
      break;
    case "FAILURE":
      await running();
      await report(id, { status: "FAILURE", failedHosts: ["web1"] });
      break;
    case "INIT_FAILURE":
      await lease();
      await report(id, { status: "INIT_FAILURE", reason: "clone_failed" });
      break;
    case "STOPPED":
      await s.stop(scope, 0);
      break;
    case "KILLED":
      await s.kill(scope);
      break;
    default:
      throw new Error(`no recipe for ${status}`);
  }
  expect((await s.view()).status).toBe(status);
  return id;
}

/** The Execution object's pending alarm time. */
export function alarmOf(id: string): Promise<number | null> {
  return runInDurableObject(object(id), (_obj: Execution, state) => state.storage.getAlarm());
}

/** The object's stored state (what sits at rest). */
export function storedState(id: string): Promise<string> {
  return runInDurableObject(object(id), (_obj: Execution, state) => {
    const row = state.storage.sql.exec<{ json: string }>("SELECT json FROM state").toArray()[0];
    return row?.json ?? "";
  });
}

/** The D1 index row of an execution. */
export function indexRow(id: string) {
  return env.DB.prepare("SELECT * FROM executions WHERE id = ?")
    .bind(id)
    .first<Record<string, unknown> & { snapshot: string; version: number; status: string }>();
}

/** The ProblemError a call is refused with (status, extensions, message). */
export function failure(p: PromiseLike<unknown>): Promise<{ status?: number; extensions?: Record<string, unknown>; message: string }> {
  return Promise.resolve(p).then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: { status?: number; extensions?: Record<string, unknown>; message: string }) => e,
  );
}
