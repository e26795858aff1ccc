import { createRoute } from "@hono/zod-openapi";
import { listAuditPage } from "../domain/audit";
import { requireAccess, requireOperator } from "../lib/auth";
import { jsonAnswer, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AuditPage, AuditQuery } from "../schemas/audit";
import { AliasOnly } from "../schemas/common";

/** The audit log (worker/domain/audit.ts): read-only, newest first. Mounted at /audit. */
export const audit = router();

const tags = ["Audit"];
const description =
  "Every change: jobs, executions, schedules, service accounts, registration tokens, agents, the inventory, logins and failed logins, " +
  "with who made it (the token's subject and kind), which resource, when, from which IP and the request id. Kept 90 days.";

// Registered before `/{alias}` (a `~` is never in an alias, as in /minions/~shared).
audit.openapi(
  createRoute({
    method: "get",
    path: "/~shared",
    tags,
    summary: "Operators: the log of what belongs to no account (the shared pool's agents, logins of unknown usernames); 404 to anyone else",
    middleware: [requireOperator("audit", "read")] as const,
    request: { query: AuditQuery },
    responses: { 200: jsonAnswer(AuditPage, "A page of entries, newest first"), ...problemResponses(400, 401, 403, 404) },
  }),
  async (c) => c.json(await listAuditPage(c.env, null, c.req.valid("query")), 200, { "cache-control": "no-store" }),
);

audit.openapi(
  createRoute({
    method: "get",
    path: "/{alias}",
    tags,
    summary: "Admins: the account's audit log, newest first (?since=epoch ms, ?resource=job or job/{id})",
    description,
    middleware: [requireAccess("audit", "read")] as const,
    request: { params: AliasOnly, query: AuditQuery },
    responses: { 200: jsonAnswer(AuditPage, "A page of entries, newest first"), ...problemResponses(400, 401, 403, 404) },
  }),
  async (c) => c.json(await listAuditPage(c.env, c.req.valid("param").alias, c.req.valid("query")), 200, { "cache-control": "no-store" }),
);
