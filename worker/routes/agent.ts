import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { agentDispatcherKey, dispatcherStub, executionStub } from "../domain/dispatch";
import { registerAgent, requireAgent, type AgentEnv } from "../domain/agents";
import { router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { LeaseRequest, MAX_POLL_WAIT_MS, RegisterAnswer, RegisterBody } from "../schemas/agent";
import { AgentAnswerSchema, AttemptBody, EventUpload, LeaseBody, StatusReport } from "../schemas/execution";

/**
 * The agent protocol (docs/agent-protocol.md). Routes only parse and hand over: the Dispatcher
 * object hands out leases, the Execution object decides whether the calling agent holds one.
 */
export const agent = router<AgentEnv>();
agent.use("/lease", requireAgent);
agent.use("/executions/*", requireAgent);

const json = <T extends z.ZodTypeAny>(schema: T) => ({ content: { "application/json": { schema } }, required: true });
const ok = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });
const security = [{ agentCredential: [] }];
agent.openAPIRegistry.registerComponent("securitySchemes", "agentCredential", { type: "http", scheme: "bearer", bearerFormat: "rac_…" });

agent.openapi(
  createRoute({
    method: "post",
    path: "/register",
    tags: ["Agent protocol"],
    summary: "Register with a registration token (or, for the shared pool, an operator JWT as bearer)",
    request: { body: json(RegisterBody) },
    responses: { 200: ok(RegisterAnswer, "The agent's credential, shown once"), ...problemResponses(400, 401) },
  }),
  async (c) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    const answer = await registerAgent(c.env, c.req.valid("json"), m?.[1] ?? null);
    return c.json(answer, 200, { "cache-control": "no-store" });
  },
);

agent.openapi(
  createRoute({
    method: "post",
    path: "/lease",
    tags: ["Agent protocol"],
    summary: "Long poll for work: held up to 25 s, answered the moment a lease is granted",
    security,
    request: { body: { ...json(LeaseRequest), required: false } },
    responses: {
      200: ok(LeaseBody, "A lease: the execution is now INITIALIZING and held by this agent"),
      204: { description: "No work came within waitMs" },
      ...problemResponses(400, 401),
    },
  }),
  async (c) => {
    const body = c.req.valid("json") ?? {};
    if (body.capacity === 0) return c.body(null, 204);
    const me = c.var.agent;
    const req = c.req.raw;
    // RPC typing maps the lease's `unknown` extra vars to `never`; the value is the object's LeaseBody.
    const lease = (await dispatcherStub(c.env, agentDispatcherKey(me)).poll(
      // Asked right before a grant: a poll whose client went away must not swallow a lease.
      { agentId: me.id, alive: () => !req.signal.aborted },
      Math.min(body.waitMs ?? MAX_POLL_WAIT_MS, MAX_POLL_WAIT_MS),
    )) as LeaseBody | null;
    if (!lease) return c.body(null, 204);
    if (req.signal.aborted) {
      // Gone between the grant and the answer: hand it straight back rather than wait for the lease to lapse.
      c.executionCtx.waitUntil(executionStub(c.env, lease.executionId).release(me.id, lease.attempt).catch(() => undefined));
      return c.body(null, 204);
    }
    return c.json(lease, 200, { "cache-control": "no-store" });
  },
);

const ExecParam = z.object({ executionId: z.string().min(1).max(100) });
const execResponses = { ...problemResponses(400, 401, 404, 409) };

/** The Execution object the agent names; it checks (and rejects with 409 "abandon") that the agent holds the lease. */
function held(c: Context<AgentEnv>, executionId: string) {
  return executionStub(c.env, executionId);
}

agent.openapi(
  createRoute({
    method: "post",
    path: "/executions/{executionId}/heartbeat",
    tags: ["Agent protocol"],
    summary: "Renew the lease; the answer carries a pending stop/kill",
    security,
    request: { params: ExecParam, body: json(AttemptBody) },
    responses: { 200: ok(AgentAnswerSchema, "Renewed"), ...execResponses },
  }),
  async (c) => {
    const { executionId } = c.req.valid("param");
    const answer = await held(c, executionId).heartbeat(c.var.agent.id, c.req.valid("json").attempt);
    return c.json(answer, 200);
  },
);

agent.openapi(
  createRoute({
    method: "post",
    path: "/executions/{executionId}/status",
    tags: ["Agent protocol"],
    summary: "Report a status change and/or the repository log",
    security,
    request: { params: ExecParam, body: json(StatusReport) },
    responses: {
      200: ok(AgentAnswerSchema.extend({ status: z.string() }), "Accepted"),
      ...execResponses,
    },
  }),
  async (c) => {
    const { executionId } = c.req.valid("param");
    return c.json(await held(c, executionId).report(c.var.agent.id, c.req.valid("json")), 200);
  },
);

agent.openapi(
  createRoute({
    method: "post",
    path: "/executions/{executionId}/events",
    tags: ["Agent protocol"],
    summary: "Upload a batch of events (idempotent by seq)",
    security,
    request: { params: ExecParam, body: json(EventUpload) },
    responses: {
      200: ok(AgentAnswerSchema.extend({ acceptedThrough: z.number().int() }), "Stored through acceptedThrough"),
      ...execResponses,
    },
  }),
  async (c) => {
    const { executionId } = c.req.valid("param");
    return c.json(await held(c, executionId).uploadEvents(c.var.agent.id, c.req.valid("json")), 200);
  },
);

agent.openapi(
  createRoute({
    method: "post",
    path: "/executions/{executionId}/release",
    tags: ["Agent protocol"],
    summary: "Hand back an execution whose playbook has not started (it goes back to PENDING)",
    security,
    request: { params: ExecParam, body: json(AttemptBody) },
    responses: { 200: ok(AgentAnswerSchema, "Released"), ...execResponses },
  }),
  async (c) => {
    const { executionId } = c.req.valid("param");
    return c.json(await held(c, executionId).release(c.var.agent.id, c.req.valid("json").attempt), 200);
  },
);
