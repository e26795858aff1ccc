import { createRoute, z } from "@hono/zod-openapi";
import { listEvents, listJobEvents } from "../domain/executions";
import { requireAccess } from "../lib/auth";
import { router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AliasParam, JobIdParam, PageQuery } from "../schemas/job";
import { StatusEventPage } from "../schemas/execution";
import { EventsQuery, pageOf } from "./executions";

/** The original "status service" paths: status events of a job's executions. Mounted at /status. */
export const status = router();

const tags = ["Executions"];
const ok = { description: "A page of status events", content: { "application/json": { schema: StatusEventPage } } };

status.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/job/{jobId}",
    tags,
    summary: "Every status event of a job's executions (oldest execution first, each in sequence order)",
    middleware: [requireAccess("read")] as const,
    request: { params: z.object({ alias: AliasParam, jobId: JobIdParam }), query: PageQuery },
    responses: { 200: ok, ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    return c.json(await listJobEvents(c.env, alias, jobId, pageOf(c.req.valid("query"))), 200);
  },
);

status.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/job/{jobId}/execution/{executionId}",
    tags,
    summary: "One execution's status events in sequence order",
    middleware: [requireAccess("read")] as const,
    request: {
      params: z.object({ alias: AliasParam, jobId: JobIdParam, executionId: z.string().openapi({ param: { name: "executionId", in: "path" } }) }),
      query: EventsQuery,
    },
    responses: { 200: ok, ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    return c.json(
      await listEvents(c.env, { accountAlias: p.alias, jobId: p.jobId }, p.executionId, { after: Number(q.after ?? 0), ...pageOf(q) }),
      200,
    );
  },
);
