/**
 * Schedules (the original's Job Schedule Service): the rules of create, replace, read and delete.
 * Firing lives in worker/cron.ts. A schedule starts its job on behalf of a service account of the
 * same account, which must have role user or admin when the schedule is saved and when it fires.
 */
import { getJob } from "../db/jobs";
import { getServiceAccount } from "../db/service-accounts";
import { deleteSchedule, getSchedule, insertScheduleIfRoom, listSchedules, replaceSchedule as replaceRow, type ScheduleRow } from "../db/schedules";
import { newId } from "../lib/ids";
import { badRequest, conflict, notFound, type FieldError } from "../lib/problem";
import type { Actor } from "../schemas/audit";
import type { Page, PageParams } from "../schemas/common";
import { MAX_SCHEDULES_PER_JOB, type Schedule, type ScheduleInput, type ScheduleReplace, type Trigger } from "../schemas/schedule";
import { auditStatement } from "./audit";
import { canonicalTimezone, checkTrigger } from "./schedule-times";

export function scheduleView(r: ScheduleRow): Schedule {
  const job = `/jobs/${encodeURIComponent(r.account_alias)}/${encodeURIComponent(r.job_id)}`;
  return {
    id: r.id,
    scheduleId: r.id,
    jobId: r.job_id,
    accountAlias: r.account_alias,
    description: r.description,
    trigger: { type: r.trigger_type, expression: r.expression },
    timezone: r.timezone,
    enabled: r.enabled === 1,
    serviceAccountAlias: r.service_account_alias,
    nextRunTime: r.next_run_time,
    lastRunTime: r.last_run_time,
    lastRunDelayMs: r.last_run_delay_ms,
    lastExecutionId: r.last_execution_id,
    lastError: r.last_error,
    createdTime: r.created_time,
    lastUpdatedTime: r.last_updated_time,
    links: { self: `${job}/schedules/${encodeURIComponent(r.id)}`, job, executions: `${job}/executions` },
  };
}

/** Whether a service account may be what a schedule fires as (why not, for `lastError` and 400s). */
export function serviceAccountProblem(alias: string, role: string | null): string | null {
  if (role === null) return `service account '${alias}' does not exist in this account`;
  if (role !== "user" && role !== "admin") return `service account '${alias}' has role ${role}; a schedule needs role user or admin`;
  return null;
}

type Definition = Pick<ScheduleRow, "description" | "service_account_alias" | "trigger_type" | "expression" | "timezone" | "enabled" | "next_run_time">;

/**
 * Checks a body against the rules the schema cannot (one 400 naming every field) and answers the
 * definition to store. `keepNext`: the stored slot, kept when the trigger does not change (a PUT
 * must not skip a slot that is due but not yet fired).
 */
async function definitionOf(env: Env, accountAlias: string, input: ScheduleInput | ScheduleReplace, now: number, current?: ScheduleRow): Promise<Definition> {
  const key = input.trigger ? "trigger" : "type";
  const trigger = (input.trigger ?? input.type) as Trigger;
  const enabled = input.enabled ?? true;
  const errors: FieldError[] = [];
  const timezone = canonicalTimezone(input.timezone ?? "UTC");
  if (!timezone) errors.push({ field: "timezone", message: "must be an IANA time zone name, e.g. Europe/Berlin or UTC" });
  // Checked in UTC when the zone is unknown, so that a bad expression is reported too.
  const checked = checkTrigger(trigger, timezone ?? "UTC", now, enabled);
  if ("problem" in checked) errors.push({ field: `${key}.expression`, message: checked.problem });
  const sa = await getServiceAccount(env.DB, accountAlias, input.serviceAccountAlias);
  const saProblem = serviceAccountProblem(input.serviceAccountAlias, sa?.role ?? null);
  if (saProblem) errors.push({ field: "serviceAccountAlias", message: saProblem.replace(/^service account '[^']*' /, "") });
  if (errors.length || "problem" in checked) throw badRequest(errors);

  const unchanged =
    current !== undefined &&
    current.enabled === 1 &&
    enabled &&
    current.trigger_type === trigger.type &&
    current.expression === trigger.expression &&
    current.timezone === timezone;
  return {
    description: input.description,
    service_account_alias: input.serviceAccountAlias,
    trigger_type: trigger.type,
    expression: trigger.expression,
    timezone: timezone!,
    enabled: enabled ? 1 : 0,
    next_run_time: !enabled ? null : unchanged && current.next_run_time !== null ? current.next_run_time : checked.next,
  };
}

/** What the audit log keeps of a schedule: its job, and for a saved one its trigger, zone, service account and whether it is on. */
function scheduleAudit(
  action: "schedule.created" | "schedule.replaced" | "schedule.deleted",
  accountAlias: string,
  jobId: string,
  id: string,
  r?: ScheduleRow,
) {
  const details = r
    ? { jobId, trigger: `${r.trigger_type} ${r.expression}`, timezone: r.timezone, serviceAccountAlias: r.service_account_alias, enabled: r.enabled === 1 }
    : { jobId };
  return { accountAlias, action, resource: { type: "schedule", id }, details } as const;
}

async function requireJob(env: Env, accountAlias: string, jobId: string) {
  if (!(await getJob(env.DB, accountAlias, jobId))) throw notFound("No such job.");
}

export async function createSchedule(env: Env, accountAlias: string, jobId: string, input: ScheduleInput, actor: Actor): Promise<Schedule> {
  await requireJob(env, accountAlias, jobId);
  const now = Date.now();
  const row: ScheduleRow = {
    id: newId(now),
    account_alias: accountAlias,
    job_id: jobId,
    ...(await definitionOf(env, accountAlias, input, now)),
    last_run_time: null,
    last_run_delay_ms: null,
    last_execution_id: null,
    last_error: null,
    created_time: now,
    last_updated_time: now,
  };
  const audit = auditStatement(env.DB, actor, scheduleAudit("schedule.created", accountAlias, jobId, row.id, row), { ifChanged: true });
  const outcome = await insertScheduleIfRoom(env.DB, row, MAX_SCHEDULES_PER_JOB, audit);
  if (outcome === "no-job") throw notFound("No such job.");
  if (outcome === "full") throw conflict(`The job has ${MAX_SCHEDULES_PER_JOB} schedules, the most it may have; delete one first.`);
  return scheduleView(row);
}

export async function listSchedulePage(env: Env, accountAlias: string, jobId: string, p: PageParams): Promise<Page<Schedule>> {
  const page = await listSchedules(env.DB, accountAlias, jobId, p);
  // An empty list of a job that does not exist is a 404, as any unknown id is.
  if (page.totalSize === 0) await requireJob(env, accountAlias, jobId);
  return { ...page, results: page.results.map(scheduleView) };
}

const missing = () => notFound("No such schedule.");

export async function readSchedule(env: Env, accountAlias: string, jobId: string, scheduleId: string): Promise<Schedule> {
  const row = await getSchedule(env.DB, accountAlias, jobId, scheduleId);
  if (!row) throw missing();
  return scheduleView(row);
}

export async function replaceSchedule(
  env: Env,
  accountAlias: string,
  jobId: string,
  scheduleId: string,
  input: ScheduleReplace,
  actor: Actor,
): Promise<Schedule> {
  const current = await getSchedule(env.DB, accountAlias, jobId, scheduleId);
  if (!current) throw missing();
  const now = Date.now();
  const row: ScheduleRow = {
    ...current,
    ...(await definitionOf(env, accountAlias, input, now, current)),
    last_error: null,
    last_updated_time: Math.max(now, current.last_updated_time),
  };
  if (
    !(await replaceRow(
      env.DB,
      row,
      auditStatement(env.DB, actor, scheduleAudit("schedule.replaced", accountAlias, jobId, scheduleId, row), { ifChanged: true }),
    ))
  )
    throw missing();
  return scheduleView(row);
}

export async function removeSchedule(env: Env, accountAlias: string, jobId: string, scheduleId: string, actor: Actor): Promise<void> {
  const audit = auditStatement(env.DB, actor, scheduleAudit("schedule.deleted", accountAlias, jobId, scheduleId), { ifChanged: true });
  if (!(await deleteSchedule(env.DB, accountAlias, jobId, scheduleId, audit))) throw missing();
}
