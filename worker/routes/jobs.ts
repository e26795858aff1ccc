import { createRoute, z } from "@hono/zod-openapi";
import { startIfAsked } from "../domain/executions";
import { createJob, deleteJob, listJobPage, readJob, replaceJob } from "../domain/jobs";
import { requireAccess } from "../lib/auth";
import { actorOf } from "../lib/request-context";
import { jsonAnswer, jsonBody, router, validationHook } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AliasOnly, PageQuery } from "../schemas/common";
import { ImmediateQuery, Job, JobInput, JobPage, JobParams, JobReplace, jobEnvProblems } from "../schemas/job";

/** Jobs: parse, authorize, call the domain, shape the answer. Mounted at /jobs. */
export const jobs = router();

const tags = ["Jobs"];
const JobWithExecution = Job.extend({
  execution: z.record(z.string(), z.unknown()).optional().openapi({ description: "The execution started (only with immediate=true)." }),
}).openapi("JobWithExecution");
const stored = jsonAnswer(JobWithExecution, "The job as stored (with `execution` when immediate=true)");

// ALLOW_LOOPBACK_HTTP is configuration, so that one rule is checked here, reported with the schema's.
const bodyHook = validationHook((target, data, c) => (target === "json" ? jobEnvProblems(data, c.env.ALLOW_LOOPBACK_HTTP === "true") : []));

jobs.openapi(
  createRoute({
    method: "post",
    path: "/{alias}",
    tags,
    summary: "Create a job",
    middleware: [requireAccess("jobs", "write")] as const,
    request: { params: AliasOnly, query: ImmediateQuery, body: jsonBody(JobInput) },
    responses: { 200: stored, ...problemResponses(400, 401, 403, 404, 413, 415) },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    const job = await createJob(c.env, alias, c.req.valid("json"), actorOf(c));
    return c.json(await startIfAsked(c.env, job, c.req.valid("query").immediate === "true", actorOf(c)), 200);
  },
  (result, c) => bodyHook(result, c as never),
);

jobs.openapi(
  createRoute({
    method: "get",
    path: "/{alias}",
    tags,
    summary: "List jobs, newest first",
    middleware: [requireAccess("jobs", "read")] as const,
    request: { params: AliasOnly, query: PageQuery },
    responses: { 200: jsonAnswer(JobPage, "A page of jobs"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    return c.json(await listJobPage(c.env, alias, c.req.valid("query")), 200);
  },
);

jobs.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}",
    tags,
    summary: "Get a job",
    middleware: [requireAccess("jobs", "read")] as const,
    request: { params: JobParams },
    responses: { 200: jsonAnswer(Job, "The job"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    return c.json(await readJob(c.env, alias, jobId), 200);
  },
);

jobs.openapi(
  createRoute({
    method: "put",
    path: "/{alias}/{jobId}",
    tags,
    summary: "Replace a job's definition",
    description: "Send back what GET answered, changed. Omitted secrets are kept; an explicit null removes one.",
    middleware: [requireAccess("jobs", "write")] as const,
    request: { params: JobParams, query: ImmediateQuery, body: jsonBody(JobReplace) },
    responses: { 200: stored, ...problemResponses(400, 401, 403, 404, 409, 413, 415) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    const job = await replaceJob(c.env, alias, jobId, c.req.valid("json"), actorOf(c));
    return c.json(await startIfAsked(c.env, job, c.req.valid("query").immediate === "true", actorOf(c)), 200);
  },
  (result, c) => bodyHook(result, c as never),
);

jobs.openapi(
  createRoute({
    method: "delete",
    path: "/{alias}/{jobId}",
    tags,
    summary: "Delete a job (409 while an execution is active)",
    middleware: [requireAccess("jobs", "write")] as const,
    request: { params: JobParams },
    responses: { 204: { description: "Deleted" }, ...problemResponses(400, 401, 403, 404, 409) },
  }),
  async (c) => {
    const { alias, jobId } = c.req.valid("param");
    await deleteJob(c.env, alias, jobId, actorOf(c));
    return c.body(null, 204);
  },
);
