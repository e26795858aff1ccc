import { createRoute, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { getExecution, killExecution, listEvents, listExecutions, readLog, restartExecution, startExecution, stopExecution } from "../domain/executions";
import { requireAccess } from "../lib/auth";
import { actorOf } from "../lib/request-context";
import { emptyJsonIsNoBody, jsonAnswer, jsonBody, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AliasOnly, PageQuery, queryInt } from "../schemas/common";
import { ExecutionPage, ExecutionParams, ExecutionStatus, ExecutionView, RestartBody, StartBody, StatusEventPage, StopBody } from "../schemas/execution";
import { JobParams } from "../schemas/job";

/** Executions (snake_case, as the original service). Mounted at /jobs, before the jobs router. */
export const executions = router();

const tags = ["Executions"];

const afterParam = (description: string) => queryInt("after", 0, 999_999_999_999_999, 0, description);
const ListQuery = PageQuery.extend({
  status: ExecutionStatus.optional().openapi({ param: { name: "status", in: "query" }, description: "Only executions in this status." }),
});
export const EventsQuery = PageQuery.extend({ after: afterParam("Only events with a sequence above this.") });
const LogQuery = z.object({
  follow: z
    .enum(["true", "false", ""], { message: "must be true or false" })
    .optional()
    .openapi({
      param: { name: "follow", in: "query" },
      description: "Stream live until the execution ends: plain text, or Server-Sent Events when the client accepts text/event-stream.",
    }),
  after: afterParam("Resume after this event sequence (as Last-Event-ID does)."),
});

export const scopeOf = (p: { alias: string; jobId?: string }) => ({ accountAlias: p.alias, jobId: p.jobId ?? null });

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/executions",
    tags,
    summary: "The account's executions, newest first",
    middleware: [requireAccess("executions", "read")] as const,
    request: { params: AliasOnly, query: ListQuery },
    responses: { 200: jsonAnswer(ExecutionPage, "A page of executions"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    return c.json(await listExecutions(c.env, alias, c.req.valid("query")), 200);
  },
);

executions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/start",
    tags,
    summary: "Start the job: a new PENDING execution",
    description: "Keys given here apply to this execution only and are never answered nor kept after it ends.",
    middleware: [requireAccess("executions", "write"), emptyJsonIsNoBody] as const,
    request: { params: JobParams, body: jsonBody(StartBody, false) },
    responses: { 200: jsonAnswer(ExecutionView, "The execution, PENDING"), ...problemResponses(400, 401, 403, 404, 415) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    const overrides = c.req.valid("json") ?? {};
    return c.json(await startExecution(c.env, alias, jobId, { trigger: "api", overrides, actor: actorOf(c) }), 200);
  },
);

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions",
    tags,
    summary: "One job's executions, newest first",
    middleware: [requireAccess("executions", "read")] as const,
    request: { params: JobParams, query: ListQuery },
    responses: { 200: jsonAnswer(ExecutionPage, "A page of executions"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    return c.json(await listExecutions(c.env, alias, { ...c.req.valid("query"), jobId }), 200);
  },
);

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions/{executionId}",
    tags,
    summary: "One execution",
    middleware: [requireAccess("executions", "read")] as const,
    request: { params: ExecutionParams },
    responses: { 200: jsonAnswer(ExecutionView, "The execution"), ...problemResponses(401, 404) },
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
    middleware: [requireAccess("executions", "write"), emptyJsonIsNoBody] as const,
    request: { params: ExecutionParams, body: jsonBody(RestartBody, false) },
    responses: { 200: jsonAnswer(ExecutionView, "The execution, PENDING again"), ...problemResponses(400, 401, 403, 404, 409, 415) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await restartExecution(c.env, scopeOf(p), p.executionId, c.req.valid("json") ?? {}, actorOf(c)), 200);
  },
);

executions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/executions/{executionId}/stop",
    tags,
    summary: "Stop gracefully; after expiryDuration seconds (0: never) it escalates to a kill",
    middleware: [requireAccess("executions", "write"), emptyJsonIsNoBody] as const,
    request: { params: ExecutionParams, body: jsonBody(StopBody, false) },
    responses: {
      200: jsonAnswer(ExecutionView, "The execution, STOPPING (or STOPPED when it was PENDING)"),
      ...problemResponses(400, 401, 403, 404, 409, 415),
    },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const body = c.req.valid("json") ?? {};
    return c.json(await stopExecution(c.env, scopeOf(p), p.executionId, body.expiryDuration ?? 0, actorOf(c)), 200);
  },
);

executions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/executions/{executionId}/kill",
    tags,
    summary: "Kill at once",
    middleware: [requireAccess("executions", "write")] as const,
    request: { params: ExecutionParams },
    responses: { 200: jsonAnswer(ExecutionView, "The execution, KILLING (or KILLED when it was PENDING)"), ...problemResponses(401, 403, 404, 409) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await killExecution(c.env, scopeOf(p), p.executionId, actorOf(c)), 200);
  },
);

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions/{executionId}/events",
    tags,
    summary: "The execution's status events in sequence order",
    middleware: [requireAccess("executions", "read")] as const,
    request: { params: ExecutionParams, query: EventsQuery },
    responses: { 200: jsonAnswer(StatusEventPage, "A page of status events"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await listEvents(c.env, scopeOf(p), p.executionId, c.req.valid("query")), 200);
  },
);

/** How long one object call waits for new output before the stream sends a keep-alive comment. */
const FOLLOW_WAIT_MS = 15_000;

executions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions/{executionId}/log",
    tags,
    summary: "The plain-text log; ?follow=true streams it live until the execution ends (Server-Sent Events when the client accepts text/event-stream)",
    description:
      "With follow, the answer is the plain-text log streamed live until the execution ends (what `curl -N` shows), or, when the " +
      "request's Accept names text/event-stream, Server-Sent Events: each SSE message carries the next piece of the log as `data` and the sequence of its last event as `id`; " +
      "a reconnect with Last-Event-ID resumes after it. A final `event: end` message carries the terminal status.",
    middleware: [requireAccess("executions", "read")] as const,
    request: { params: ExecutionParams, query: LogQuery },
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
    const lastEventId = c.req.header("last-event-id")?.trim();
    const after = lastEventId && /^\d{1,15}$/.test(lastEventId) ? Number(lastEventId) : q.after;
    await getExecution(c.env, scope, p.executionId); // a 404 before any stream starts

    // Server-Sent Events for a client that asks for them (the dashboard); plain text otherwise (`curl -N`).
    const wantsSse = /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(c.req.header("accept") ?? "");
    if (q.follow === "true" && wantsSse) {
      return streamSSE(c, async (stream) => {
        let aborted = false;
        stream.onAbort(() => {
          aborted = true;
        });
        for await (const chunk of readLog(c.env, scope, p.executionId, after, { followMs: FOLLOW_WAIT_MS })) {
          if (aborted) break;
          if (chunk.text) await stream.writeSSE({ id: String(chunk.through), data: chunk.text });
          else if (!chunk.ended) await stream.write(": keep-alive\n\n");
          if (chunk.ended) await stream.writeSSE({ event: "end", id: String(chunk.through), data: chunk.status });
        }
      });
    }

    // Plain text, pulled piece by piece so that a big log never sits in memory whole; with follow,
    // live until the execution ends (a wait with nothing new writes nothing).
    const pieces = readLog(c.env, scope, p.executionId, after, { followMs: q.follow === "true" ? FOLLOW_WAIT_MS : 0 });
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        for (;;) {
          const next = await pieces.next();
          if (next.done) return controller.close();
          if (next.value.text) return controller.enqueue(encoder.encode(next.value.text));
        }
      },
      async cancel() {
        await pieces.return(undefined);
      },
    });
    const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };
    // A followed log is not compressed: the edge (and wrangler dev, which mimics it) gzips
    // text/plain for a client that accepts it and holds the small pieces of a live log until the
    // end. A Content-Encoding of our own leaves the body as it is.
    if (q.follow === "true") Object.assign(headers, { "content-encoding": "identity", "cache-control": "no-store, no-transform" });
    return new Response(body, { status: 200, headers });
  },
);
