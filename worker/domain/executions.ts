import { parseStatusEvent, type InitInput, type LogChunk, type Scope } from "../execution.do";
import { notFound } from "../lib/problem";
import type { ExecutionStatus, ExecutionView, StatusEvent } from "../schemas/execution";
import type { StartOverrides } from "./contracts";
import { routeExecution } from "./dispatch";
import { getJobSummary } from "./jobs";

/**
 * Executions: the Worker-side entry points. The Execution object decides every state change;
 * this module finds the object, passes the caller's scope (account, job) for it to check, and
 * serves lists from the D1 index that the objects write through to.
 */

export const ACTIVE_STATUSES = ["PENDING", "INITIALIZING", "RUNNING", "STOPPING", "KILLING"] as const;
const LEASED_STATUSES = ["INITIALIZING", "RUNNING", "STOPPING", "KILLING"] as const;

/** Ids Runner makes are UUIDs; anything else cannot name an execution (and must not mint an object). */
const EXECUTION_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function stub(env: Env, executionId: string) {
  if (!EXECUTION_ID_RE.test(executionId)) throw notFound("No such execution.");
  return env.EXECUTION.get(env.EXECUTION.idFromName(executionId));
}

let lastMs = 0;
let seq = 0;
/** A UUIDv7 (time-ordered, so the index's `id DESC` tie-break is creation order within a millisecond). */
export function newExecutionId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    seq = crypto.getRandomValues(new Uint16Array(1))[0]! & 0x3ff;
  } else if (++seq > 0xfff) {
    lastMs++;
    seq = 0;
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  let ms = lastMs;
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = 0x70 | (seq >> 8);
  b[7] = seq & 0xff;
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A new PENDING execution of the job (404 when the account has no such job), queued for an agent. */
export async function startExecution(
  env: Env,
  accountAlias: string,
  jobId: string,
  opts: { trigger: "api" | "schedule"; scheduleId?: string; overrides?: StartOverrides },
): Promise<ExecutionView> {
  const job = await getJobSummary(env, accountAlias, jobId);
  if (!job) throw notFound("No such job.");
  const executionId = newExecutionId();
  const input: InitInput = {
    executionId,
    accountAlias,
    jobId,
    trigger: opts.trigger,
    scheduleId: opts.scheduleId ?? null,
    executionTtl: job.executionTtl,
    dispatcherKey: await routeExecution(env, accountAlias, job),
    overrides: opts.overrides,
  };
  return stub(env, executionId).init(input);
}

/** Served by the D1 index (the jobs routes ask it before a delete). */
export async function hasActiveExecution(env: Env, accountAlias: string, jobId: string): Promise<boolean> {
  const row = await env.DB.prepare(
    `SELECT 1 FROM executions WHERE account_alias = ? AND job_id = ? AND status IN (${ACTIVE_STATUSES.map(() => "?").join(",")}) LIMIT 1`,
  )
    .bind(accountAlias, jobId, ...ACTIVE_STATUSES)
    .first();
  return row !== null;
}

export function getExecution(env: Env, scope: Scope, executionId: string): Promise<ExecutionView> {
  return stub(env, executionId).view(scope);
}

export async function restartExecution(
  env: Env,
  scope: Scope,
  executionId: string,
  overrides: Pick<StartOverrides, "hosts" | "sshPrivateKey"> = {},
): Promise<ExecutionView> {
  const s = stub(env, executionId);
  const current = await s.view(scope); // 404 before any routing work
  const job = await getJobSummary(env, scope.accountAlias, current.job_id);
  // Routed afresh: the account may have agents (or a location) now that it did not have before.
  const key = job ? await routeExecution(env, scope.accountAlias, job) : undefined;
  return s.restart(scope, overrides, key);
}

export function stopExecution(env: Env, scope: Scope, executionId: string, expiryDuration = 0): Promise<ExecutionView> {
  return stub(env, executionId).stop(scope, expiryDuration);
}

export function killExecution(env: Env, scope: Scope, executionId: string): Promise<ExecutionView> {
  return stub(env, executionId).kill(scope);
}

export async function listEvents(
  env: Env,
  scope: Scope,
  executionId: string,
  q: { after: number; page: number; size: number },
): Promise<{ totalSize: number; page: number; size: number; results: StatusEvent[] }> {
  const r = await stub(env, executionId).events(scope, q.after, q.page, q.size);
  return { totalSize: r.totalSize, page: q.page, size: q.size, results: r.results.map(parseStatusEvent) };
}

export function logChunk(env: Env, scope: Scope, executionId: string, after: number, maxBytes: number, waitMs = 0): Promise<LogChunk> {
  return stub(env, executionId).logChunk(scope, after, maxBytes, waitMs);
}

/** A page of the account's (or one job's) executions from the index, newest first. */
export async function listExecutions(
  env: Env,
  accountAlias: string,
  q: { jobId?: string; status?: ExecutionStatus; page: number; size: number },
): Promise<{ totalSize: number; page: number; size: number; results: ExecutionView[] }> {
  const where = ["account_alias = ?"];
  const args: unknown[] = [accountAlias];
  if (q.jobId !== undefined) {
    where.push("job_id = ?");
    args.push(q.jobId);
  }
  if (q.status !== undefined) {
    where.push("status = ?");
    args.push(q.status);
  }
  const cond = where.join(" AND ");
  const [count, rows] = await env.DB.batch<{ n?: number; snapshot?: string }>([
    env.DB.prepare(`SELECT COUNT(*) AS n FROM executions WHERE ${cond}`).bind(...args),
    env.DB.prepare(`SELECT snapshot FROM executions WHERE ${cond} ORDER BY created_time DESC, id DESC LIMIT ? OFFSET ?`).bind(
      ...args,
      q.size,
      q.page * q.size,
    ),
  ]);
  return {
    totalSize: count!.results[0]?.n ?? 0,
    page: q.page,
    size: q.size,
    results: rows!.results.map((r) => JSON.parse(r.snapshot!) as ExecutionView),
  };
}

/**
 * The status service: every event of a job's executions (oldest execution first, each in
 * sequence order), paged across them. Ended executions' counts come from the index; live ones
 * are asked, and only the objects that hold the requested page are read.
 */
export async function listJobEvents(
  env: Env,
  accountAlias: string,
  jobId: string,
  q: { page: number; size: number },
): Promise<{ totalSize: number; page: number; size: number; results: StatusEvent[] }> {
  const { results: rows } = await env.DB.prepare(
    `SELECT id, status, event_count FROM executions WHERE account_alias = ? AND job_id = ? ORDER BY created_time ASC, id ASC`,
  )
    .bind(accountAlias, jobId)
    .all<{ id: string; status: ExecutionStatus; event_count: number }>();
  const active = new Set<string>(ACTIVE_STATUSES);
  const counts = await Promise.all(
    rows.map((r) => (active.has(r.status) ? stub(env, r.id).eventCount() : Promise.resolve(r.event_count))),
  );
  const totalSize = counts.reduce((a, b) => a + b, 0);
  const results: StatusEvent[] = [];
  let skip = q.page * q.size;
  for (let i = 0; i < rows.length && results.length < q.size; i++) {
    const n = counts[i]!;
    if (skip >= n) {
      skip -= n;
      continue;
    }
    const want = q.size - results.length;
    const page = await stub(env, rows[i]!.id).events(undefined, skip, 0, want);
    results.push(...page.results.map(parseStatusEvent));
    skip = 0;
  }
  return { totalSize, page: q.page, size: q.size, results };
}

/**
 * The cron's safety net for alarms that did not fire: active executions whose index row has not
 * changed for a while get their object poked (it applies any deadline that passed and re-arms).
 */
export async function sweepExpiredLeases(env: Env, now = Date.now(), opts: { staleMs?: number; limit?: number } = {}): Promise<number> {
  const stale = now - (opts.staleMs ?? 2 * 60_000);
  const statuses = [...LEASED_STATUSES, "PENDING"];
  const { results } = await env.DB.prepare(
    `SELECT id FROM executions
     WHERE status IN (${statuses.map(() => "?").join(",")}) AND updated_time < ? AND COALESCE(checked_time, 0) < ?
     ORDER BY updated_time LIMIT ?`,
  )
    .bind(...statuses, stale, stale, opts.limit ?? 200)
    .all<{ id: string }>();
  let poked = 0;
  await Promise.all(
    results.map(async ({ id }) => {
      try {
        await env.EXECUTION.get(env.EXECUTION.idFromName(id)).sweep();
        await env.DB.prepare(`UPDATE executions SET checked_time = ? WHERE id = ?`).bind(now, id).run();
        poked++;
      } catch (e) {
        console.error("sweep: execution poke failed", id, e instanceof Error ? e.message : "error");
      }
    }),
  );
  return poked;
}
