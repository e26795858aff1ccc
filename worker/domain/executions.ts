// Placeholder until the executions work lands: the jobs routes import these two names.
import { ProblemError } from "../lib/problem";
import type { StartOverrides } from "./contracts";

export const ACTIVE_STATUSES = ["PENDING", "INITIALIZING", "RUNNING", "STOPPING", "KILLING"] as const;

export async function hasActiveExecution(env: Env, accountAlias: string, jobId: string): Promise<boolean> {
  const row = await env.DB.prepare(
    `SELECT 1 FROM executions WHERE account_alias = ? AND job_id = ? AND status IN (${ACTIVE_STATUSES.map(() => "?").join(",")}) LIMIT 1`,
  )
    .bind(accountAlias, jobId, ...ACTIVE_STATUSES)
    .first();
  return row !== null;
}

export async function startExecution(
  _env: Env,
  _accountAlias: string,
  _jobId: string,
  _opts: { trigger: "api" | "schedule"; scheduleId?: string; overrides?: StartOverrides },
): Promise<Record<string, unknown>> {
  throw new ProblemError(501, "Not Implemented", "Executions are not available yet.");
}
