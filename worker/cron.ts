/**
 * The Cron Trigger (every minute): fires due schedules, sweeps leases whose alarms were missed, and
 * prunes the audit log (rows older than 90 days, a bounded number per tick).
 *
 * Firing a schedule: read the due rows through schedules_due (so a tick costs what is due, not
 * what is held), then for each, start one execution exactly as `POST …/start` does, under an id
 * derived from (schedule, slot), and only then move the schedule on. A retried or overlapping
 * tick, or one that crashed between the start and the bookkeeping, starts the same id again,
 * which the Execution object answers with the execution it already is: at most once per slot.
 * A slot missed while the service was down fires once, late (the next slot is computed from now).
 */
import { dueSchedules, recordFired, recordSkipped, type DueSchedule } from "./db/schedules";
import { pruneAuditLog } from "./domain/audit";
import { startExecution, sweepExpiredLeases } from "./domain/executions";
import { nextRunAfter } from "./domain/schedule-times";
import { serviceAccountProblem } from "./domain/schedules";
import { slotExecutionId } from "./lib/ids";
import { log } from "./lib/log";
import { ProblemError } from "./lib/problem";

export interface TickReport {
  /** Due rows read (a row read twice, e.g. after a failed bookkeeping, counts once). */
  due: number;
  fired: number;
  /** Slots that did not fire, each with its reason in the schedule's `lastError`. */
  skipped: number;
  /** D1's count of rows the due queries read: what the index bounds. */
  rowsRead: number;
  ms: number;
}

export interface TickOptions {
  /** Due rows read per query; the tick reads again while a full batch brought new ones. */
  batch?: number;
  /** Schedules fired at once. */
  concurrency?: number;
  /** Stop reading more due rows after this long; the rest fire on the next tick, late. */
  budgetMs?: number;
}

/** The `scheduled` handler's work. The firing is awaited, so `/__scheduled` answers once it is done. */
export async function onCron(controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
  ctx.waitUntil(sweepExpiredLeases(env));
  ctx.waitUntil(
    pruneAuditLog(env, controller.scheduledTime).then(
      (n) => void (n > 0 && log.info("cron: audit log pruned", { rows: n })),
      (e) => log.error("cron: audit log prune failed", { error: e }),
    ),
  );
  const report = await fireDueSchedules(env, controller.scheduledTime);
  if (report.due > 0) console.log(JSON.stringify({ msg: "cron: schedules", cron: controller.cron, ...report }));
}

/** Fires every schedule due at `now` (the tick's scheduled time). Never throws for one schedule. */
export async function fireDueSchedules(env: Env, now: number, opts: TickOptions = {}): Promise<TickReport> {
  const batch = opts.batch ?? 100;
  const concurrency = opts.concurrency ?? 8;
  const budgetMs = opts.budgetMs ?? 20_000;
  const t0 = Date.now();
  const report: TickReport = { due: 0, fired: 0, skipped: 0, rowsRead: 0, ms: 0 };
  const seen = new Set<string>();
  for (;;) {
    const { rows, rowsRead } = await dueSchedules(env.DB, now, batch);
    report.rowsRead += rowsRead;
    const fresh = rows.filter((r) => !seen.has(r.id));
    for (const r of fresh) seen.add(r.id);
    report.due += fresh.length;
    await pool(fresh, concurrency, async (s) => {
      const outcome = await fireOne(env, s, now).catch((e) => {
        // Bookkeeping failed (D1): the row stays due and the next tick retries the same slot id.
        console.error("cron: schedule bookkeeping failed", s.id, e instanceof Error ? e.message : "error");
        return "skipped" as const;
      });
      report[outcome]++;
    });
    // A full batch may hide more due rows; one without anything new means the rest are stuck.
    if (rows.length < batch || fresh.length === 0 || Date.now() - t0 > budgetMs) break;
  }
  report.ms = Date.now() - t0;
  return report;
}

async function fireOne(env: Env, s: DueSchedule, now: number): Promise<"fired" | "skipped"> {
  const slot = s.next_run_time;
  const at = new Date(slot).toISOString();
  const skip = async (next: number | null, why: string) => {
    await recordSkipped(env.DB, { id: s.id, slot, next, error: `the slot at ${at} did not fire: ${why}` });
    return "skipped" as const;
  };

  let next: number | null;
  try {
    // From now, not from the slot: slots missed while the service was down collapse into this one.
    next = nextRunAfter({ type: s.trigger_type, expression: s.expression }, s.timezone, Math.max(now, slot));
  } catch (e) {
    return skip(null, `the trigger could not be evaluated (${e instanceof Error ? e.message : "error"}); the schedule is disabled until it is replaced`);
  }

  const saProblem = serviceAccountProblem(s.service_account_alias, s.service_account_role);
  if (saProblem) return skip(next, saProblem);

  const executionId = await slotExecutionId(s.id, slot);
  let createdTime: number;
  try {
    // Who started it, for the audit log: the schedule (it fires as its service account, in `details`).
    const actor = { subject: s.id, kind: "schedule", ip: null, requestId: null } as const;
    const execution = await startExecution(env, s.account_alias, s.job_id, { trigger: "schedule", scheduleId: s.id, scheduledTime: slot, executionId, actor });
    createdTime = execution.created_time;
  } catch (e) {
    const why = e instanceof ProblemError ? (e.detail ?? e.title) : "the execution could not be started";
    if (!(e instanceof ProblemError)) console.error("cron: schedule start failed", s.id, e instanceof Error ? e.message : "error");
    return skip(next, why);
  }
  // The execution's own creation time: a tick that repeats a crashed one records the same delay.
  await recordFired(env.DB, { id: s.id, slot, next, delayMs: Math.max(0, createdTime - slot), executionId });
  return "fired";
}

/** Runs `fn` over `items`, at most `n` at once. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}
