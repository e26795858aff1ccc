import { createRoute } from "@hono/zod-openapi";
import { listEvents, listJobEvents } from "../domain/executions";
import { requireAccess } from "../lib/auth";
import { jsonAnswer, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { PageQuery } from "../schemas/common";
import { ExecutionParams, StatusEventPage } from "../schemas/execution";
import { JobParams } from "../schemas/job";
import { EventsQuery, scopeOf } from "./executions";

/** The original "status service" paths: status events of a job's executions. Mounted at /status. */
export const status = router();

const tags = ["Executions"];
const ok = jsonAnswer(StatusEventPage, "A page of status events");

status.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/job/{jobId}",
    tags,
    summary: "Every status event of a job's executions (oldest execution first, each in sequence order)",
    middleware: [requireAccess("executions", "read")] as const,
    request: { params: JobParams, query: PageQuery },
    responses: { 200: ok, ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    return c.json(await listJobEvents(c.env, alias, jobId, c.req.valid("query")), 200);
  },
);

status.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/job/{jobId}/execution/{executionId}",
    tags,
    summary: "One execution's status events in sequence order",
    middleware: [requireAccess("executions", "read")] as const,
    request: { params: ExecutionParams, query: EventsQuery },
    responses: { 200: ok, ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await listEvents(c.env, scopeOf(p), p.executionId, c.req.valid("query")), 200);
  },
);
