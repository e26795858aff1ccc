import { z } from "@hono/zod-openapi";
import { pageSchema, pathParam } from "./common";
import { isObject, JobParams } from "./job";
import { ServiceAccountAlias } from "./service-account";

/**
 * The schedule entity (the original's Job Schedule Service), camelCase as the original: what a
 * client sends to create or replace one (ScheduleInput, ScheduleReplace) and what is answered
 * (Schedule). The shape is checked here; what needs a cron parser, the clock or the database
 * (expression, timezone, a date in the past, the service account) is checked by
 * worker/domain/schedules.ts and reported the same way, naming the field.
 */

export const TRIGGER_TYPES = ["cron", "date"] as const;
export const MAX_SCHEDULES_PER_JOB = 100;

export const Trigger = z
  .object({
    type: z.enum(TRIGGER_TYPES, { message: "must be cron or date" }),
    expression: z.string().trim().min(1, { message: "must not be empty" }).max(200, { message: "must be at most 200 characters" }).openapi({
      description:
        "cron: five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly. date: one ISO-8601 date-time (without an offset: in `timezone`).",
      example: "0 3 * * *",
    }),
  })
  .openapi("ScheduleTrigger");
export type Trigger = z.output<typeof Trigger>;

const fields = {
  description: z.string().trim().min(1, { message: "must not be empty" }).max(1000, { message: "must be at most 1000 characters" }),
  serviceAccountAlias: ServiceAccountAlias.openapi({
    description: "The service account the schedule starts executions as: role user or admin in this account.",
  }),
  trigger: Trigger.optional().openapi({ description: "When it fires. The original's own documentation sends it as `type`: either key is accepted." }),
  type: Trigger.optional().openapi({ description: "The original's name for `trigger` (the same object)." }),
  timezone: z
    .string()
    .max(64, { message: "must be at most 64 characters" })
    .optional()
    .openapi({ description: "An IANA time zone name; default UTC.", example: "Europe/Berlin" }),
  enabled: z.boolean().optional().openapi({ description: "Default true." }),
};

/** Exactly one trigger, under either key (both may be sent only if they say the same). */
function oneTrigger(v: { trigger?: Trigger; type?: Trigger }, ctx: z.RefinementCtx) {
  if (!v.trigger && !v.type) ctx.addIssue({ code: "custom", path: ["trigger"], message: "is required (as `trigger` or, as the original, `type`)" });
  else if (v.trigger && v.type && (v.trigger.type !== v.type.type || v.trigger.expression !== v.type.expression)) {
    ctx.addIssue({ code: "custom", path: ["type"], message: "must be the same as `trigger` when both are given (they are two names for one field)" });
  }
}

export const ScheduleInput = z
  .object(fields)
  .superRefine(oneTrigger, { when: (p) => isObject(p.value) })
  .openapi("ScheduleInput");

const readOnly = (what: string) =>
  z
    .unknown()
    .optional()
    .openapi({ description: `Read-only (${what}): ignored.` });

/** PUT replaces the definition; the read-only fields a GET answered are accepted and ignored. */
export const ScheduleReplace = z
  .object({
    ...fields,
    id: readOnly("id"),
    scheduleId: readOnly("id"),
    jobId: readOnly("path"),
    accountAlias: readOnly("path"),
    nextRunTime: readOnly("computed"),
    lastRunTime: readOnly("history"),
    lastRunDelayMs: readOnly("history"),
    lastExecutionId: readOnly("history"),
    lastError: readOnly("history"),
    createdTime: readOnly("time"),
    lastUpdatedTime: readOnly("time"),
    links: readOnly("links"),
  })
  .superRefine(oneTrigger, { when: (p) => isObject(p.value) })
  .openapi("ScheduleReplace");

export type ScheduleInput = z.output<typeof ScheduleInput>;
export type ScheduleReplace = z.output<typeof ScheduleReplace>;

const epochMs = (description: string) =>
  z
    .number()
    .int()
    .nullable()
    .openapi({ description: `${description} Epoch milliseconds.` });

export const Schedule = z
  .object({
    id: z.string(),
    scheduleId: z.string().openapi({ description: "The same as `id` (the original answered both)." }),
    jobId: z.string(),
    accountAlias: z.string(),
    description: z.string(),
    trigger: Trigger,
    timezone: z.string(),
    enabled: z.boolean(),
    serviceAccountAlias: z.string(),
    nextRunTime: epochMs("The next slot it fires at; null when disabled or a date that has fired."),
    lastRunTime: epochMs("The slot it last fired for."),
    lastRunDelayMs: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "How long after that slot its execution was started (a slot missed while the service was down fires once, late)." }),
    lastExecutionId: z.string().nullable(),
    lastError: z.string().nullable().openapi({ description: "Why the last slot did not fire (or null when it did)." }),
    createdTime: z.number().int().openapi({ description: "Epoch milliseconds." }),
    lastUpdatedTime: z.number().int().openapi({ description: "Epoch milliseconds." }),
    links: z.object({ self: z.string(), job: z.string(), executions: z.string() }),
  })
  .openapi("Schedule");
export type Schedule = z.infer<typeof Schedule>;

export const SchedulePage = pageSchema(Schedule, "SchedulePage");

/** `/{alias}/{jobId}/schedules/{scheduleId}` */
export const ScheduleParams = JobParams.extend({ scheduleId: pathParam("scheduleId") });
