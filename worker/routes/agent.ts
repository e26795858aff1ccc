import { createRoute, z } from "@hono/zod-openapi";
import { pollForLease, registerAgent } from "../domain/agents";
import { executionClient } from "../domain/execution-client";
import { isExecutionId } from "../domain/executions";
import { abandon } from "../domain/contracts";
import { bearerToken, requireAgent, type AgentEnv } from "../lib/auth";
import { jsonAnswer, jsonBody, router } from "../lib/hono";
import { originOf } from "../lib/request-context";
import { problemResponses } from "../lib/problem";
import { LeaseRequest, RegisterAnswer, RegisterBody } from "../schemas/agent";
import { AgentAnswerSchema, AgentEvent, EventUpload, LeaseBody, LeaseRef, StatusReport } from "../schemas/execution";

/**
 * The agent protocol (docs/agent-protocol.md). Routes only parse and hand over: the Dispatcher
 * object hands out leases, the Execution object decides whether the calling agent holds one.
 */
export const agent = router<AgentEnv>();
agent.use("/lease", requireAgent);
agent.use("/executions/*", requireAgent);

const security = [{ agentCredential: [] }];
const optionalBearer: Record<string, string[]>[] = [{}, { bearer: [] }];
agent.openAPIRegistry.registerComponent("securitySchemes", "agentCredential", { type: "http", scheme: "bearer", bearerFormat: "rac_…" });
// EventUpload's events are checked by hand (worker/schemas/execution.ts) and name this schema by reference.
agent.openAPIRegistry.register("AgentEvent", AgentEvent);

agent.openapi(
  createRoute({
    method: "post",
    path: "/register",
    tags: ["Agent protocol"],
    summary: "Register with a registration token (or, for the shared pool, an operator JWT as bearer)",
    // The registration token travels in the body; only a shared-pool agent sends a bearer (an operator's).
    security: optionalBearer,
    request: { body: jsonBody(RegisterBody) },
    responses: { 200: jsonAnswer(RegisterAnswer, "The agent's credential, shown once"), ...problemResponses(400, 401) },
  }),
  async (c) => {
    const answer = await registerAgent(c.env, c.req.valid("json"), bearerToken(c.req.header("authorization")), originOf(c));
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
    request: { body: jsonBody(LeaseRequest, false) },
    responses: {
      200: jsonAnswer(LeaseBody, "A lease: the execution is now INITIALIZING and held by this agent"),
      204: { description: "No work came within waitMs" },
      ...problemResponses(400, 401),
    },
  }),
  async (c) => {
    const lease = await pollForLease(c.env, c.var.agent, c.req.valid("json") ?? {}, c.req.raw.signal, c.executionCtx);
    return lease ? c.json(lease, 200, { "cache-control": "no-store" }) : c.body(null, 204);
  },
);

const ExecParam = z.object({ executionId: z.string().min(1).max(100) });
const execResponses = { ...problemResponses(400, 401, 404, 409) };

// The Execution object checks that the calling agent holds the lease the body names (else 409 with command "abandon").
// An id Runner cannot have made is answered the same way without minting an object for it.
const held = (env: Env, executionId: string) => {
  if (!isExecutionId(executionId)) throw abandon("This agent does not hold the execution's current lease: abandon the run.");
  return executionClient(env, executionId);
};

agent.openapi(
  createRoute({
    method: "post",
    path: "/executions/{executionId}/heartbeat",
    tags: ["Agent protocol"],
    summary: "Renew the lease; the answer carries a pending stop/kill",
    security,
    request: { params: ExecParam, body: jsonBody(LeaseRef) },
    responses: { 200: jsonAnswer(AgentAnswerSchema, "Renewed"), ...execResponses },
  }),
  async (c) => {
    const { executionId } = c.req.valid("param");
    const answer = await held(c.env, executionId).heartbeat(c.var.agent.id, c.req.valid("json"));
    return c.json(answer, 200);
  },
);

agent.openapi(
  createRoute({
    method: "post",
    path: "/executions/{executionId}/status",
    tags: ["Agent protocol"],
    summary: "Report a status change and/or the repository log; the final status may carry the run's last events",
    security,
    request: { params: ExecParam, body: jsonBody(StatusReport) },
    responses: {
      200: jsonAnswer(
        AgentAnswerSchema.extend({
          status: z.string(),
          acceptedThrough: z.number().int().optional().openapi({ description: "With `events`: stored through this sequence." }),
        }),
        "Accepted",
      ),
      ...execResponses,
    },
  }),
  async (c) => {
    const { executionId } = c.req.valid("param");
    return c.json(await held(c.env, executionId).report(c.var.agent.id, c.req.valid("json")), 200);
  },
);

agent.openapi(
  createRoute({
    method: "post",
    path: "/executions/{executionId}/events",
    tags: ["Agent protocol"],
    summary: "Upload a batch of events (idempotent by seq)",
    security,
    request: { params: ExecParam, body: jsonBody(EventUpload) },
    responses: {
      200: jsonAnswer(AgentAnswerSchema.extend({ acceptedThrough: z.number().int() }), "Stored through acceptedThrough"),
      ...execResponses,
    },
  }),
  async (c) => {
    const { executionId } = c.req.valid("param");
    return c.json(await held(c.env, executionId).upload(c.var.agent.id, c.req.valid("json")), 200);
  },
);

agent.openapi(
  createRoute({
    method: "post",
    path: "/executions/{executionId}/release",
    tags: ["Agent protocol"],
    summary: "Hand back an execution whose playbook has not started (it goes back to PENDING)",
    security,
    request: { params: ExecParam, body: jsonBody(LeaseRef) },
    responses: { 200: jsonAnswer(AgentAnswerSchema, "Released"), ...execResponses },
  }),
  async (c) => {
    const { executionId } = c.req.valid("param");
    return c.json(await held(c.env, executionId).release(c.var.agent.id, c.req.valid("json")), 200);
  },
);
