import { createRoute } from "@hono/zod-openapi";
import { createSchedule, listSchedulePage, readSchedule, removeSchedule, replaceSchedule } from "../domain/schedules";
import { requireAccess } from "../lib/auth";
import { actorOf } from "../lib/request-context";
import { jsonAnswer, jsonBody, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { PageQuery } from "../schemas/common";
import { JobParams } from "../schemas/job";
import { Schedule, ScheduleInput, SchedulePage, ScheduleParams, ScheduleReplace } from "../schemas/schedule";

/** Schedules (the original's Job Schedule Service paths): parse, authorize, call the domain. Mounted at /jobs. */
export const schedules = router();

const tags = ["Schedules"];
const one = jsonAnswer(Schedule, "The schedule");

schedules.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/schedules",
    tags,
    summary: "Schedule the job: cron (five fields or @hourly…) or one date, in an IANA time zone",
    description:
      "Fires on behalf of `serviceAccountAlias` (role user or admin). The trigger may be sent as `trigger` or, as the original documented it, `type`. At most 100 per job.",
    middleware: [requireAccess("schedules", "write")] as const,
    request: { params: JobParams, body: jsonBody(ScheduleInput) },
    responses: { 200: one, ...problemResponses(400, 401, 403, 404, 409, 413, 415) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    return c.json(await createSchedule(c.env, alias, jobId, c.req.valid("json"), actorOf(c)), 200);
  },
);

schedules.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/schedules",
    tags,
    summary: "The job's schedules, newest first",
    middleware: [requireAccess("schedules", "read")] as const,
    request: { params: JobParams, query: PageQuery },
    responses: { 200: jsonAnswer(SchedulePage, "A page of schedules"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    return c.json(await listSchedulePage(c.env, alias, jobId, c.req.valid("query")), 200);
  },
);

schedules.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/schedules/{scheduleId}",
    tags,
    summary: "One schedule",
    middleware: [requireAccess("schedules", "read")] as const,
    request: { params: ScheduleParams },
    responses: { 200: one, ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias, jobId, scheduleId } = c.req.valid("param");
    return c.json(await readSchedule(c.env, alias, jobId, scheduleId), 200);
  },
);

schedules.openapi(
  createRoute({
    method: "put",
    path: "/{alias}/{jobId}/schedules/{scheduleId}",
    tags,
    summary: "Replace a schedule's definition",
    description: "Send back what GET answered, changed: the read-only fields are ignored. A changed trigger (or enabling it) recomputes the next run from now.",
    middleware: [requireAccess("schedules", "write")] as const,
    request: { params: ScheduleParams, body: jsonBody(ScheduleReplace) },
    responses: { 200: one, ...problemResponses(400, 401, 403, 404, 413, 415) },
  }),
  async (c) => {
    const { alias, jobId, scheduleId } = c.req.valid("param");
    return c.json(await replaceSchedule(c.env, alias, jobId, scheduleId, c.req.valid("json"), actorOf(c)), 200);
  },
);

schedules.openapi(
  createRoute({
    method: "delete",
    path: "/{alias}/{jobId}/schedules/{scheduleId}",
    tags,
    summary: "Delete a schedule",
    middleware: [requireAccess("schedules", "write")] as const,
    request: { params: ScheduleParams },
    responses: { 204: { description: "Deleted" }, ...problemResponses(400, 401, 403, 404) },
  }),
  async (c) => {
    const { alias, jobId, scheduleId } = c.req.valid("param");
    await removeSchedule(c.env, alias, jobId, scheduleId, actorOf(c));
    return c.body(null, 204);
  },
);
