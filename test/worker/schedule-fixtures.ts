/** Shared steps for the schedules tests: real routes, the real `scheduled` handler with controlled time. */
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { expect } from "vitest";
import worker from "../../worker/index";
import { api, token } from "./helpers";
import { newServiceAccount } from "./service-account-fixtures";

export const MINUTE = 60_000;

/** A schedule body; `extra` overrides (e.g. `{ trigger: undefined, type: {...} }`). */
export function scheduleBody(serviceAccountAlias: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { description: "nightly", serviceAccountAlias, trigger: { type: "cron", expression: "* * * * *" }, ...extra };
}

/** A service account with role `role` (user by default) in `alias`; answers its alias. */
export async function runAs(alias: string, role: "admin" | "user" | "viewer" = "user"): Promise<string> {
  return (await newServiceAccount(alias, { role })).alias;
}

/** Creates a schedule through the API (as a user of `alias`); answers what it answered. */
export async function newSchedule(alias: string, jobId: string, body: Record<string, unknown>) {
  const r = await api("POST", `/jobs/${alias}/${jobId}/schedules`, { token: await token([alias], "user"), body });
  expect(r.status, r.text).toBe(200);
  return r.json as Record<string, any> & { id: string; nextRunTime: number | null };
}

export async function getSchedule(alias: string, jobId: string, id: string) {
  const r = await api("GET", `/jobs/${alias}/${jobId}/schedules/${id}`, { token: await token([alias], "viewer") });
  expect(r.status, r.text).toBe(200);
  return r.json as Record<string, any>;
}

/** Runs the Worker's `scheduled` handler as the Cron Trigger would at `scheduledTime`. */
export async function tick(scheduledTime: number): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ scheduledTime, cron: "* * * * *" }), env, ctx);
  await waitOnExecutionContext(ctx);
}

/** Moves a schedule's next slot (as if time had passed, or the service had been down). */
export async function setNextRun(id: string, at: number): Promise<void> {
  await env.DB.prepare("UPDATE schedules SET next_run_time = ? WHERE id = ?").bind(at, id).run();
}

/** The job's executions, newest first (from the index, as the API answers them). */
export async function executionsOf(alias: string, jobId: string): Promise<Record<string, any>[]> {
  const r = await api("GET", `/jobs/${alias}/${jobId}/executions`, { token: await token([alias], "viewer") });
  expect(r.status, r.text).toBe(200);
  return r.json.results;
}

/** Nothing left to fire: schedules of one test never fire in another test's ticks (storage is per file). */
export async function disableAll(): Promise<void> {
  await env.DB.prepare("UPDATE schedules SET enabled = 0, next_run_time = NULL").run();
}
