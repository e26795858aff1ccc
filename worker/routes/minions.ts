import { createRoute, z } from "@hono/zod-openapi";
import {
  createRegistrationToken,
  getAgentView,
  listAgents,
  listRegistrationTokens,
  revokeAgentAndLeases,
  revokeRegistrationToken,
} from "../domain/agents";
import { requireAccess } from "../lib/auth";
import { router, zodFieldErrors } from "../lib/hono";
import { badRequest, problemResponses } from "../lib/problem";
import { AgentPage, AgentView, CreatedTokenView, PageQuery, TokenCreateBody, TokenPage } from "../schemas/agent";

/** Agents ("minions") of an account and the registration tokens they join with. */
export const minions = router();

const Alias = z.object({ alias: z.string() });
const errors = problemResponses(400, 401, 403, 404);

// Registered before `/{alias}/{agentId}` so that `tokens` is never taken for an agent id.
minions.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/tokens",
    tags: ["Agents"],
    // Access is checked before the input, so a foreign caller learns nothing from a 400.
    middleware: [requireAccess("write")] as const,
    summary: "Create a registration token (answered once, never again)",
    request: {
      params: Alias,
      body: { content: { "application/json": { schema: TokenCreateBody } }, required: false },
    },
    responses: { 200: { description: "The token", content: { "application/json": { schema: CreatedTokenView } } }, ...errors },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    // The body is optional: an empty POST makes a token with no name or location.
    const raw = (await c.req.text()).trim();
    const parsed = TokenCreateBody.safeParse(raw ? JSON.parse(raw) : {});
    if (!parsed.success) throw badRequest(zodFieldErrors(parsed.error));
    return c.json(await createRegistrationToken(c.env, alias, parsed.data), 200, { "cache-control": "no-store" });
  },
);

minions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/tokens",
    tags: ["Agents"],
    middleware: [requireAccess("read")] as const,
    summary: "Registration tokens that are not revoked (without the token values)",
    request: { params: Alias, query: PageQuery },
    responses: { 200: { description: "A page", content: { "application/json": { schema: TokenPage } } }, ...errors },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    const { page, size } = c.req.valid("query");
    return c.json(await listRegistrationTokens(c.env, alias, page, size), 200);
  },
);

minions.openapi(
  createRoute({
    method: "delete",
    path: "/{alias}/tokens/{tokenId}",
    tags: ["Agents"],
    middleware: [requireAccess("write")] as const,
    summary: "Revoke a registration token (agents already registered keep working)",
    request: { params: z.object({ alias: z.string(), tokenId: z.string() }) },
    responses: { 204: { description: "Revoked" }, ...errors },
  }),
  async (c) => {
    const { alias, tokenId } = c.req.valid("param");
    await revokeRegistrationToken(c.env, alias, tokenId);
    return c.body(null, 204);
  },
);

minions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}",
    tags: ["Agents"],
    middleware: [requireAccess("read")] as const,
    summary: "The account's agents: location, version, online, lastSeen, running executions",
    request: { params: Alias, query: PageQuery },
    responses: { 200: { description: "A page", content: { "application/json": { schema: AgentPage } } }, ...errors },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    const { page, size } = c.req.valid("query");
    return c.json(await listAgents(c.env, alias, page, size), 200);
  },
);

minions.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{agentId}",
    tags: ["Agents"],
    middleware: [requireAccess("read")] as const,
    summary: "One agent",
    request: { params: z.object({ alias: z.string(), agentId: z.string() }) },
    responses: { 200: { description: "The agent", content: { "application/json": { schema: AgentView } } }, ...errors },
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
    tags: ["Agents"],
    middleware: [requireAccess("write")] as const,
    summary: "Revoke an agent: its credential stops working and its leases are lost at once",
    request: { params: z.object({ alias: z.string(), agentId: z.string() }) },
    responses: { 204: { description: "Revoked" }, ...errors },
  }),
  async (c) => {
    const { alias, agentId } = c.req.valid("param");
    await revokeAgentAndLeases(c.env, alias, agentId);
    return c.body(null, 204);
  },
);
