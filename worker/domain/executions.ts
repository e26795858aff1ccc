import { ownAgentsOf, ownAgentsStatement, type OwnAgents, type OwnAgentsRow } from "../db/agents";
import { jobExecutionsOldestFirst, jobKnown, listExecutionViews, markChecked, staleActiveExecutions } from "../db/executions";
import { jobStatement, type JobRow } from "../db/jobs";
import { settingsStatement, type SettingsRow } from "../db/settings";
import { newId } from "../lib/ids";
import { log } from "../lib/log";
import { notFound } from "../lib/problem";
import type { Actor } from "../schemas/audit";
import { pageOf, type Page, type PageParams } from "../schemas/common";
import { ACTIVE_STATUSES, type ExecutionStatus, type ExecutionView, type StatusEvent } from "../schemas/execution";
import type { Job } from "../schemas/job";
import type { Settings } from "../schemas/settings";
import { recordAuditAfter } from "./audit";
import { parseStatusEvent, type InitInput, type LogChunk, type Scope, type StartOverrides } from "./contracts";
import { routeWith } from "./dispatch";
import { executionClient } from "./execution-client";
import { summaryOf } from "./jobs";
import { settingsOf } from "./settings";

/**
 * Executions: the Worker-side entry points. The Execution object decides every state change;
 * this module finds the object, passes the caller's scope (account, job) for it to check, and
 * serves lists from the D1 index that the objects write through to.
 */

/** Ids Runner makes are UUIDs; anything else cannot name an execution (and must not mint an object). */
const EXECUTION_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const isExecutionId = (id: string) => EXECUTION_ID_RE.test(id);

function execution(env: Env, executionId: string) {
  if (!isExecutionId(executionId)) throw notFound("No such execution.");
  return executionClient(env, executionId);
}

/**
 * An execution's change for the audit log, once the object made it (it cannot be undone, so a
 * failure to record is logged rather than answered). Details: ids, statuses and the names of the
 * keys a start or restart overrode, never their values (keys, extra vars).
 */
function auditExecution(
  env: Env,
  actor: Actor,
  scope: { accountAlias: string },
  action: "execution.started" | "execution.stopped" | "execution.killed" | "execution.restarted",
  view: ExecutionView,
  details: Record<string, string | number | string[] | null> = {},
) {
  return recordAuditAfter(env, actor, {
    accountAlias: scope.accountAlias,
    action,
    resource: { type: "execution", id: view.execution_id },
    details: { jobId: view.job_id, status: view.status, ...details },
  });
}

const overrideKeys = (o: object | undefined) => Object.keys(o ?? {}).sort();

/**
 * A new PENDING execution of the job (404 when the account has no such job), queued for an agent.
 * A schedule names the execution id itself (one per slot, see `slotExecutionId`): starting the
 * same id again answers the execution that id already is. `actor`: who started it (for a
 * schedule, the schedule), for the audit log.
 */
export async function startExecution(
  env: Env,
  accountAlias: string,
  jobId: string,
  opts: { trigger: "api" | "schedule"; scheduleId?: string; scheduledTime?: number; executionId?: string; overrides?: StartOverrides; actor: Actor },
): Promise<ExecutionView> {
  const { row, settings, own } = await readForStart(env, accountAlias, jobId);
  if (!row) throw notFound("No such job.");
  const job = summaryOf(row);
  const executionId = opts.executionId ?? newId();
  const input: InitInput = {
    executionId,
    accountAlias,
    jobId,
    trigger: opts.trigger,
    scheduleId: opts.scheduleId ?? null,
    scheduledTime: opts.scheduledTime ?? null,
    executionTtl: job.executionTtl,
    dispatcherKey: routeWith(accountAlias, job, own, settings.sharedPoolFallback, Date.now()),
    overrides: opts.overrides,
    callbacks: job.callbacks,
    pendingTimeoutMinutes: settings.pendingTimeoutMinutes,
    jobRow: row,
  };
  const view = await execution(env, executionId).init(input);
  await auditExecution(env, opts.actor, { accountAlias }, "execution.started", view, {
    trigger: opts.trigger,
    ...(opts.scheduleId ? { scheduleId: opts.scheduleId } : {}),
    overrides: overrideKeys(opts.overrides),
  });
  return view;
}

/**
 * What a start (or restart) reads before the Execution object, in one D1 batch (one round trip on
 * the way to the lease): the job row, the account's settings, and its own agents for routing (not
 * needed when the job names a location, but cheaper read alongside than asked for afterwards).
 */
async function readForStart(env: Env, accountAlias: string, jobId: string): Promise<{ row: JobRow | null; settings: Settings; own: OwnAgents }> {
  const [job, settings, own] = await env.DB.batch([
    jobStatement(env.DB, accountAlias, jobId),
    settingsStatement(env.DB, accountAlias),
    ownAgentsStatement(env.DB, accountAlias),
  ]);
  return {
    row: (job?.results[0] as JobRow | undefined) ?? null,
    settings: settingsOf(accountAlias, (settings?.results[0] as SettingsRow | undefined) ?? null),
    own: ownAgentsOf(own?.results[0] as OwnAgentsRow | undefined),
  };
}

export type JobWithExecution = Job & { execution?: Record<string, unknown> };

/** The job as stored, and with `immediate` also its new execution (`POST /jobs?immediate=true`, PUT likewise). */
export async function startIfAsked(env: Env, job: Job, immediate: boolean, actor: Actor): Promise<JobWithExecution> {
  if (!immediate) return job;
  const execution = await startExecution(env, job.accountAlias, job.id, { trigger: "api", actor });
  return { ...job, execution: execution as Record<string, unknown> };
}

export function getExecution(env: Env, scope: Scope, executionId: string): Promise<ExecutionView> {
  return execution(env, executionId).view(scope);
}

export async function restartExecution(
  env: Env,
  scope: Scope,
  executionId: string,
  overrides: Pick<StartOverrides, "hosts" | "sshPrivateKey">,
  actor: Actor,
): Promise<ExecutionView> {
  const x = execution(env, executionId);
  const current = await x.view(scope); // 404 before any routing work
  // Routed afresh: the account may have agents (or a location) now that it did not have before.
  const { row, settings, own } = await readForStart(env, scope.accountAlias, current.job_id);
  const key = row ? routeWith(scope.accountAlias, summaryOf(row), own, settings.sharedPoolFallback, Date.now()) : undefined;
  const view = await x.restart(scope, overrides, key, settings.pendingTimeoutMinutes);
  await auditExecution(env, actor, scope, "execution.restarted", view, { overrides: overrideKeys(overrides) });
  return view;
}

export async function stopExecution(env: Env, scope: Scope, executionId: string, expiryDuration: number, actor: Actor): Promise<ExecutionView> {
  const view = await execution(env, executionId).stop(scope, expiryDuration);
  await auditExecution(env, actor, scope, "execution.stopped", view, { expiryDuration });
  return view;
}

export async function killExecution(env: Env, scope: Scope, executionId: string, actor: Actor): Promise<ExecutionView> {
  const view = await execution(env, executionId).kill(scope);
  await auditExecution(env, actor, scope, "execution.killed", view);
  return view;
}

export async function listEvents(env: Env, scope: Scope, executionId: string, q: PageParams & { after: number }): Promise<Page<StatusEvent>> {
  const r = await execution(env, executionId).events(scope, q.after, q.page, q.size);
  return pageOf(q, r.totalSize, r.results.map(parseStatusEvent));
}

const LOG_PIECE_CHARS = 256 * 1024;
const FOLLOW_PIECE_CHARS = 64 * 1024;

/**
 * The log after event sequence `after`, piece by piece (so a big log never sits in memory whole).
 * Without `followMs` the pieces end at the last stored event. With it, each call waits up to that
 * long for new output (a piece without text means none came: time for a keep-alive), and the
 * pieces end with the one that finds the execution ended and its log read to the end.
 */
export async function* readLog(env: Env, scope: Scope, executionId: string, after: number, opts: { followMs: number }): AsyncGenerator<LogChunk> {
  const x = execution(env, executionId);
  const follow = opts.followMs > 0;
  for (;;) {
    const chunk = await x.logChunk(scope, after, follow ? FOLLOW_PIECE_CHARS : LOG_PIECE_CHARS, opts.followMs);
    if (!follow && !chunk.text) return;
    yield chunk;
    after = chunk.through;
    if (chunk.ended) return;
  }
}

/**
 * A page of the account's (or one job's) executions from the index, newest first. A job id that
 * names nothing (no such job, and no executions of a deleted one) is a 404, as any unknown id is.
 */
export async function listExecutions(
  env: Env,
  accountAlias: string,
  q: PageParams & { jobId?: string; status?: ExecutionStatus },
): Promise<Page<ExecutionView>> {
  const page = await listExecutionViews(env.DB, accountAlias, { jobId: q.jobId, status: q.status }, q);
  if (q.jobId !== undefined && page.totalSize === 0 && !(await jobKnown(env.DB, accountAlias, q.jobId))) throw notFound("No such job.");
  return page;
}

/**
 * The status service: every event of a job's executions (oldest execution first, each in
 * sequence order), paged across them. Ended executions' counts come from the index; live ones
 * are asked, and only the objects that hold the requested page are read.
 */
export async function listJobEvents(env: Env, accountAlias: string, jobId: string, q: PageParams): Promise<Page<StatusEvent>> {
  const rows = await jobExecutionsOldestFirst(env.DB, accountAlias, jobId);
  if (rows.length === 0 && !(await jobKnown(env.DB, accountAlias, jobId))) throw notFound("No such job.");
  const active = new Set<string>(ACTIVE_STATUSES);
  const counts = await Promise.all(rows.map((r) => (active.has(r.status) ? executionClient(env, r.id).eventCount() : r.event_count)));
  const totalSize = counts.reduce((a, b) => a + b, 0);
  const results: StatusEvent[] = [];
  let skip = q.page * q.size;
  for (let i = 0; i < rows.length && results.length < q.size; i++) {
    const n = counts[i]!;
    if (skip >= n) {
      skip -= n;
      continue;
    }
    const page = await executionClient(env, rows[i]!.id).events(undefined, skip, 0, q.size - results.length);
    results.push(...page.results.map(parseStatusEvent));
    skip = 0;
  }
  return pageOf(q, totalSize, results);
}

/**
 * The cron's safety net for alarms that did not fire: active executions whose index row has not
 * changed for a while get their object poked (it applies any deadline that passed and re-arms).
 */
export async function sweepExpiredLeases(env: Env, now = Date.now(), opts: { staleMs?: number; limit?: number } = {}): Promise<number> {
  const ids = await staleActiveExecutions(env.DB, now - (opts.staleMs ?? 2 * 60_000), opts.limit ?? 200);
  let poked = 0;
  await Promise.all(
    ids.map(async (id) => {
      try {
        await executionClient(env, id).sweep();
        await markChecked(env.DB, id, now);
        poked++;
      } catch (e) {
        log.error("sweep: execution poke failed", { executionId: id, error: e });
      }
    }),
  );
  return poked;
}
