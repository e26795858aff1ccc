import { createRoute, z } from "@hono/zod-openapi";
import { createRegistrationToken, getAgentView, listAgents, listRegistrationTokens, revokeAgentAndLeases, revokeRegistrationToken } from "../domain/agents";
import { requireAccess, requireOperator } from "../lib/auth";
import { actorOf } from "../lib/request-context";
import { emptyJsonIsNoBody, jsonAnswer, jsonBody, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { agentInstallCommands } from "./downloads";
import { AgentPage, AgentView, CreatedTokenView, TokenCreateBody, TokenPage } from "../schemas/agent";
import { AliasOnly, PageQuery, pathParam } from "../schemas/common";

/**
 * Agents ("minions") of an account and the registration tokens they join with; and the shared
 * pool's agents, which belong to no account, under `~shared` (a `~` is never in an alias, so the
 * segment cannot be taken for one, and an account aliased "shared" keeps its own routes).
 */
export const minions = router();

const tags = ["Agents"];
const AgentParams = AliasOnly.extend({ agentId: pathParam("agentId") });
const TokenParams = AliasOnly.extend({ tokenId: pathParam("tokenId") });
const SharedAgentParams = z.object({ agentId: pathParam("agentId") });
const errors = problemResponses(400, 401, 403, 404);

// ---- the shared pool (operators only; registered before `/{alias}…`)

minions.openapi(
  createRoute({
    method: "get",
    path: "/~shared",
    tags,
    middleware: [requireOperator("agents", "read")] as const,
    summary: "Operators: the shared pool's agents (404 to anyone else)",
    request: { query: PageQuery },
    responses: { 200: jsonAnswer(AgentPage, "A page"), ...errors },
  }),
  async (c) => c.json(await listAgents(c.env, null, c.req.valid("query")), 200),
);

minions.openapi(
  createRoute({
    method: "get",
    path: "/~shared/{agentId}",
    tags,
    middleware: [requireOperator("agents", "read")] as const,
    summary: "Operators: one shared-pool agent",
    request: { params: SharedAgentParams },
    responses: { 200: jsonAnswer(AgentView, "The agent"), ...errors },
  }),
  async (c) => c.json(await getAgentView(c.env, null, c.req.valid("param").agentId), 200),
);

minions.openapi(
  createRoute({
    method: "delete",
    path: "/~shared/{agentId}",
    tags,
    middleware: [requireOperator("agents", "write")] as const,
    summary: "Operators: revoke a shared-pool agent; its leases are lost at once",
    request: { params: SharedAgentParams },
    responses: { 204: { description: "Revoked" }, ...errors },
  }),
  async (c) => {
    await revokeAgentAndLeases(c.env, null, c.req.valid("param").agentId, actorOf(c));
    return c.body(null, 204);
  },
);

// ---- an account's agents and registration tokens

// Registered before `/{alias}/{agentId}` so that `tokens` is never taken for an agent id.
minions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/tokens",
    tags,
    // Access is checked before the input, so a foreign caller learns nothing from a 400.
    // Admins only: a registration token lets an agent in, and agents receive every job's secrets.
    middleware: [requireAccess("agents", "write"), emptyJsonIsNoBody] as const,
    summary: "Admins: create a registration token (answered once, never again)",
    request: { params: AliasOnly, body: jsonBody(TokenCreateBody, false) },
    responses: { 200: jsonAnswer(CreatedTokenView, "The token"), ...problemResponses(400, 401, 403, 404, 415) },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    // The body is optional: an empty POST makes a token with no name or location.
    const created = await createRegistrationToken(c.env, alias, c.req.valid("json") ?? {}, actorOf(c));
    return c.json({ ...created, ...agentInstallCommands(new URL(c.req.url).origin, created.token) }, 200, { "cache-control": "no-store" });
  },
);

minions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/tokens",
    tags,
    middleware: [requireAccess("agents", "read")] as const,
    summary: "Registration tokens that are not revoked (without the token values)",
    request: { params: AliasOnly, query: PageQuery },
    responses: { 200: jsonAnswer(TokenPage, "A page"), ...errors },
  }),
  async (c) => c.json(await listRegistrationTokens(c.env, c.req.valid("param").alias, c.req.valid("query")), 200),
);

minions.openapi(
  createRoute({
    method: "delete",
    path: "/{alias}/tokens/{tokenId}",
    tags,
    middleware: [requireAccess("agents", "write")] as const,
    summary: "Admins: revoke a registration token (agents already registered keep working)",
    request: { params: TokenParams },
    responses: { 204: { description: "Revoked" }, ...errors },
  }),
  async (c) => {
    const { alias, tokenId } = c.req.valid("param");
    await revokeRegistrationToken(c.env, alias, tokenId, actorOf(c));
    return c.body(null, 204);
  },
);

minions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}",
    tags,
    middleware: [requireAccess("agents", "read")] as const,
    summary: "The account's agents: location, version, online, lastSeen, running executions",
    request: { params: AliasOnly, query: PageQuery },
    responses: { 200: jsonAnswer(AgentPage, "A page"), ...errors },
  }),
  async (c) => c.json(await listAgents(c.env, c.req.valid("param").alias, c.req.valid("query")), 200),
);

minions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{agentId}",
    tags,
    middleware: [requireAccess("agents", "read")] as const,
    summary: "One agent",
    request: { params: AgentParams },
    responses: { 200: jsonAnswer(AgentView, "The agent"), ...errors },
  }),
  async (c) => {
    const { alias, agentId } = c.req.valid("param");
    return c.json(await getAgentView(c.env, alias, agentId), 200);
  },
);

minions.openapi(
  createRoute({
    method: "delete",
    path: "/{alias}/{agentId}",
    tags,
    middleware: [requireAccess("agents", "write")] as const,
    summary: "Admins: revoke an agent: its credential stops working and its leases are lost at once",
    request: { params: AgentParams },
    responses: { 204: { description: "Revoked" }, ...errors },
  }),
  async (c) => {
    const { alias, agentId } = c.req.valid("param");
    await revokeAgentAndLeases(c.env, alias, agentId, actorOf(c));
    return c.body(null, 204);
  },
);
