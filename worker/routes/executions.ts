import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import {
  getExecution,
  killExecution,
  listEvents,
  listExecutions,
  logChunk,
  restartExecution,
  startExecution,
  stopExecution,
} from "../domain/executions";
import { requireAccess } from "../lib/auth";
import { router, type AppEnv } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AliasParam, JobIdParam, PageQuery } from "../schemas/job";
import { ExecutionPage, ExecutionStatus, ExecutionView, RestartBody, StartBody, StatusEventPage, StopBody } from "../schemas/execution";

/** Executions (snake_case, as the original service). Mounted at /jobs, before the jobs router. */
export const executions = router();

const tags = ["Executions"];
const ExecutionIdParam = z.string().openapi({ param: { name: "executionId", in: "path" } });
const AliasOnly = z.object({ alias: AliasParam });
const AliasAndJob = z.object({ alias: AliasParam, jobId: JobIdParam });
const OneExecution = z.object({ alias: AliasParam, jobId: JobIdParam, executionId: ExecutionIdParam });

const seqParam = (name: string, description: string) =>
  z
    .string()
    .regex(/^\d{1,15}$/, { message: "must be a whole number from 0" })
    .optional()
    .openapi({ param: { name, in: "query" }, description });
export const ListQuery = PageQuery.extend({
  status: ExecutionStatus.optional().openapi({ param: { name: "status", in: "query" }, description: "Only executions in this status." }),
});
export const EventsQuery = PageQuery.extend({ after: seqParam("after", "Only events with a sequence above this.") });
const LogQuery = z.object({
  follow: z
    .enum(["true", "false", ""], { message: "must be true or false" })
    .optional()
    .openapi({ param: { name: "follow", in: "query" }, description: "Stream live as Server-Sent Events until the execution ends." }),
  after: seqParam("after", "Resume after this event sequence (as Last-Event-ID does)."),
});

export const pageOf = (q: { page?: string; size?: string }) => ({ page: Number(q.page ?? 0), size: Number(q.size ?? 100) });

const ok = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });
const optionalJson = <T extends z.ZodType>(schema: T) => ({ required: false, content: { "application/json": { schema } } });

/** Old clients POST these actions with a JSON content type and no body at all: that is `{}`. */
const emptyJsonIsNoBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.header("content-type") && (await c.req.text()).trim() === "") {
    const headers = new Headers(c.req.raw.headers);
    headers.delete("content-type");
    c.req.raw = new Request(c.req.raw.url, { method: c.req.raw.method, headers });
  }
  await next();
};

const scopeOf = (p: { alias: string; jobId?: string }) => ({ accountAlias: p.alias, jobId: p.jobId ?? null });

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/executions",
    tags,
    summary: "The account's executions, newest first",
    middleware: [requireAccess("read")] as const,
    request: { params: AliasOnly, query: ListQuery },
    responses: { 200: ok(ExecutionPage, "A page of executions"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    const q = c.req.valid("query");
    return c.json(await listExecutions(c.env, alias, { status: q.status, ...pageOf(q) }), 200);
  },
);

executions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/start",
    tags,
    summary: "Start the job: a new PENDING execution",
    description: "Keys given here apply to this execution only and are never answered nor kept after it ends.",
    middleware: [requireAccess("write"), emptyJsonIsNoBody] as const,
    request: { params: AliasAndJob, body: optionalJson(StartBody) },
    responses: { 200: ok(ExecutionView, "The execution, PENDING"), ...problemResponses(400, 401, 403, 404, 415) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    const overrides = c.req.valid("json") ?? {};
    return c.json(await startExecution(c.env, alias, jobId, { trigger: "api", overrides }), 200);
  },
);

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions",
    tags,
    summary: "One job's executions, newest first",
    middleware: [requireAccess("read")] as const,
    request: { params: AliasAndJob, query: ListQuery },
    responses: { 200: ok(ExecutionPage, "A page of executions"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    const q = c.req.valid("query");
    return c.json(await listExecutions(c.env, alias, { jobId, status: q.status, ...pageOf(q) }), 200);
  },
);

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions/{executionId}",
    tags,
    summary: "One execution",
    middleware: [requireAccess("read")] as const,
    request: { params: OneExecution },
    responses: { 200: ok(ExecutionView, "The execution"), ...problemResponses(401, 404) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await getExecution(c.env, scopeOf(p), p.executionId), 200);
  },
);

executions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/executions/{executionId}/restart",
    tags,
    summary: "Run a FAILURE or INIT_FAILURE execution again, limited to its failed hosts",
    middleware: [requireAccess("write"), emptyJsonIsNoBody] as const,
    request: { params: OneExecution, body: optionalJson(RestartBody) },
    responses: { 200: ok(ExecutionView, "The execution, PENDING again"), ...problemResponses(400, 401, 403, 404, 409, 415) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await restartExecution(c.env, scopeOf(p), p.executionId, c.req.valid("json") ?? {}), 200);
  },
);

executions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/executions/{executionId}/stop",
    tags,
    summary: "Stop gracefully; after expiryDuration seconds (0: never) it escalates to a kill",
    middleware: [requireAccess("write"), emptyJsonIsNoBody] as const,
    request: { params: OneExecution, body: optionalJson(StopBody) },
    responses: { 200: ok(ExecutionView, "The execution, STOPPING (or STOPPED when it was PENDING)"), ...problemResponses(400, 401, 403, 404, 409, 415) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const body = c.req.valid("json") ?? {};
    return c.json(await stopExecution(c.env, scopeOf(p), p.executionId, body.expiryDuration ?? 0), 200);
  },
);

executions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/executions/{executionId}/kill",
    tags,
    summary: "Kill at once",
    middleware: [requireAccess("write")] as const,
    request: { params: OneExecution },
    responses: { 200: ok(ExecutionView, "The execution, KILLING (or KILLED when it was PENDING)"), ...problemResponses(401, 403, 404, 409) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await killExecution(c.env, scopeOf(p), p.executionId), 200);
  },
);

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions/{executionId}/events",
    tags,
    summary: "The execution's status events in sequence order",
    middleware: [requireAccess("read")] as const,
    request: { params: OneExecution, query: EventsQuery },
    responses: { 200: ok(StatusEventPage, "A page of status events"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    return c.json(await listEvents(c.env, scopeOf(p), p.executionId, { after: Number(q.after ?? 0), ...pageOf(q) }), 200);
  },
);

const LOG_CHUNK_BYTES = 256 * 1024;
const SSE_CHUNK_BYTES = 64 * 1024;
/** How long one DO call waits for new output before the stream sends a keep-alive comment. */
const FOLLOW_WAIT_MS = 15_000;

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions/{executionId}/log",
    tags,
    summary: "The plain-text log; ?follow=true streams it live (Server-Sent Events) until the execution ends",
    description:
      "With follow, each SSE message carries the next piece of the log as `data` and the sequence of its last event as `id`; " +
      "a reconnect with Last-Event-ID resumes after it. A final `event: end` message carries the terminal status.",
    middleware: [requireAccess("read")] as const,
    request: { params: OneExecution, query: LogQuery },
    responses: {
      200: {
        description: "The log",
        content: { "text/plain": { schema: z.string() }, "text/event-stream": { schema: z.string() } },
      },
      ...problemResponses(400, 401, 404),
    },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    const scope = scopeOf(p);
    const lastEventId = c.req.header("last-event-id");
    const resume = lastEventId && /^\d{1,15}$/.test(lastEventId.trim()) ? Number(lastEventId.trim()) : null;
    let after = resume ?? Number(q.after ?? 0);
    await getExecution(c.env, scope, p.executionId); // a 404 before any stream starts

    if (q.follow === "true") {
      return streamSSE(c, async (stream) => {
        let aborted = false;
        stream.onAbort(() => {
          aborted = true;
        });
        while (!aborted) {
          const chunk = await logChunk(c.env, scope, p.executionId, after, SSE_CHUNK_BYTES, FOLLOW_WAIT_MS);
          if (chunk.text) await stream.writeSSE({ id: String(chunk.through), data: chunk.text });
          else if (!chunk.ended) await stream.write(": keep-alive\n\n");
          after = chunk.through;
          if (chunk.ended) {
            await stream.writeSSE({ event: "end", id: String(after), data: chunk.status });
            break;
          }
        }
      });
    }

    // Plain text: page through the object so a big log never sits in memory whole.
    const env = c.env;
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const chunk = await logChunk(env, scope, p.executionId, after, LOG_CHUNK_BYTES);
        if (chunk.text) controller.enqueue(encoder.encode(chunk.text));
        if (!chunk.text || chunk.through === after) controller.close();
        after = chunk.through;
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
  },
);
