/** Shared steps for the dispatcher, agent and minions tests: real routes, real objects. */
import { env, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import type { Agent } from "../../worker/index";
import { agentIdentity } from "../../worker/domain/agent-identity";
import { rawStub } from "../../worker/lib/meter";
import { getJobSummary } from "../../worker/domain/jobs";
import { dispatcherStub, routeExecution } from "../../worker/domain/dispatch";
import { executionClient } from "../../worker/domain/execution-client";
import { api, token } from "./helpers";
import { playbookJob } from "./jobs-fixtures";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TestAgent {
  agentId: string;
  credential: string;
  location: string | null;
}

/** A registration token of the account, through the minions API. */
export async function regToken(alias: string, body: Record<string, unknown> = {}): Promise<string> {
  const r = await api("POST", `/minions/${alias}/tokens`, { token: await token([alias], "admin"), body });
  expect(r.status).toBe(200);
  return r.json.token as string;
}

/** Registers an agent of the account (through a fresh registration token) or of the shared pool. */
export async function newAgent(alias: string | null, opts: { location?: string; name?: string } = {}): Promise<TestAgent> {
  const body: Record<string, unknown> = { name: opts.name ?? "a", version: "0.1.0", hostname: "h.example", location: opts.location };
  let t: string | null = null;
  if (alias) body.token = await regToken(alias);
  else t = await token("*", "admin", "operator");
  const r = await api("POST", "/agent/register", { token: t, body });
  expect(r.status).toBe(200);
  return { agentId: r.json.agentId, credential: r.json.credential, location: r.json.location };
}

/**
 * Makes the agent look last seen at `at`, as if it had not called since: its D1 row, and its
 * object's record of its last `lastSeen` write (which the next call's throttle looks at).
 */
export async function ageAgent(agentId: string, at: number): Promise<void> {
  await env.DB.prepare("UPDATE agents SET last_seen = ? WHERE id = ?").bind(at, agentId).run();
  // The load model's recorder wraps stubs; runInDurableObject needs the real one.
  await runInDurableObject(rawStub(agentIdentity(env, agentId)), (o: Agent) => {
    o.seenWrittenAt = at;
  });
}

/** D1's `last_seen` of the agent. */
export async function lastSeenInD1(agentId: string): Promise<number | null> {
  return (await env.DB.prepare("SELECT last_seen FROM agents WHERE id = ?").bind(agentId).first<{ last_seen: number | null }>())!.last_seen;
}

/** An agent call with its credential. */
export function call(a: TestAgent, method: string, path: string, body?: unknown) {
  return api(method, path, { token: a.credential, body });
}

/** The last lease handed out through `lease()`, by execution: what its agent names on every call. */
const leases = new Map<string, { attempt: number; leaseId: string }>();

export async function lease(a: TestAgent, waitMs = 5_000) {
  const r = await call(a, "POST", "/agent/lease", { waitMs, capacity: 1 });
  if (r.status === 200) leases.set(r.json.executionId, { attempt: r.json.attempt, leaseId: r.json.leaseId });
  return r;
}

/** `{attempt, leaseId}` of the last lease of the execution seen by `lease()`. */
export function held(executionId: string): { attempt: number; leaseId: string } {
  const l = leases.get(executionId);
  if (!l) throw new Error(`no lease of ${executionId} was seen`);
  return l;
}

export async function newJob(alias: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await api("POST", `/jobs/${alias}`, { token: await token([alias], "admin"), body: playbookJob(extra) });
  expect(r.status).toBe(200);
  return r.json.id as string;
}

/**
 * A new PENDING execution: the real Execution object, routed by the real routing rule, which
 * queues itself on its dispatcher.
 */
export async function newExecution(alias: string, jobId: string): Promise<string> {
  const summary = await getJobSummary(env, alias, jobId);
  const key = await routeExecution(env, alias, summary!);
  const executionId = crypto.randomUUID();
  await executionClient(env, executionId).init({
    executionId,
    accountAlias: alias,
    jobId,
    trigger: "api",
    executionTtl: 180,
    dispatcherKey: key,
  });
  return executionId;
}

export function execution(executionId: string) {
  return executionClient(env, executionId).view();
}

export function dispatcher(key: string) {
  return dispatcherStub(env, key);
}

/**
 * Waits until the dispatcher has `n` waiting polls (the long poll is open before work arrives).
 * A backstop of 15 s, not 2: on a loaded machine a poll's request takes a while to reach the object.
 */
export async function untilWaiting(key: string, n: number): Promise<void> {
  for (const until = Date.now() + 15_000; Date.now() < until; ) {
    if ((await dispatcher(key).snapshot()).waiting.length >= n) return;
    await sleep(10);
  }
  throw new Error(`dispatcher ${key} never had ${n} waiting polls`);
}
