import { createRoute } from "@hono/zod-openapi";
import { createServiceAccount, listServiceAccountPage, readServiceAccount, removeServiceAccount, updateServiceAccount } from "../domain/service-accounts";
import { requireAccess } from "../lib/auth";
import { actorOf } from "../lib/request-context";
import { jsonAnswer, jsonBody, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AliasOnly, PageQuery } from "../schemas/common";
import { ServiceAccount, ServiceAccountInput, ServiceAccountList, ServiceAccountParams, ServiceAccountUpdate } from "../schemas/service-account";

/** Service accounts (the original's paths): parse, authorize, call the domain. Mounted at /serviceAccounts. */
export const serviceAccounts = router();

const tags = ["Service accounts"];
const noStore = { "cache-control": "no-store" };

serviceAccounts.openapi(
  createRoute({
    method: "post",
    path: "/{alias}",
    tags,
    summary: "Create a service account (admin); the password is never answered",
    middleware: [requireAccess("serviceAccounts", "write")] as const,
    request: { params: AliasOnly, body: jsonBody(ServiceAccountInput) },
    responses: { 200: jsonAnswer(ServiceAccount, "The service account"), ...problemResponses(400, 401, 403, 404, 409, 413, 415) },
  }),
  async (c) => c.json(await createServiceAccount(c.env, c.req.valid("param").alias, c.req.valid("json"), actorOf(c)), 200, noStore),
);

serviceAccounts.openapi(
  createRoute({
    method: "get",
    path: "/{alias}",
    tags,
    summary: "The account's service accounts, newest first: `accounts` (aliases, as the original) and `results`",
    middleware: [requireAccess("serviceAccounts", "read")] as const,
    request: { params: AliasOnly, query: PageQuery },
    responses: { 200: jsonAnswer(ServiceAccountList, "A page"), ...problemResponses(400, 401, 403, 404) },
  }),
  async (c) => c.json(await listServiceAccountPage(c.env, c.req.valid("param").alias, c.req.valid("query")), 200, noStore),
);

serviceAccounts.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{serviceAccountAlias}",
    tags,
    summary: "One service account",
    middleware: [requireAccess("serviceAccounts", "read")] as const,
    request: { params: ServiceAccountParams },
    responses: { 200: jsonAnswer(ServiceAccount, "The service account"), ...problemResponses(400, 401, 403, 404) },
  }),
  async (c) => {
    const { alias, serviceAccountAlias } = c.req.valid("param");
    return c.json(await readServiceAccount(c.env, alias, serviceAccountAlias), 200, noStore);
  },
);

serviceAccounts.openapi(
  createRoute({
    method: "put",
    path: "/{alias}/{serviceAccountAlias}",
    tags,
    summary: "Change a service account's username, password or role",
    description: "What the body leaves out is kept. A new password, username or role revokes every token issued to it before.",
    middleware: [requireAccess("serviceAccounts", "write")] as const,
    request: { params: ServiceAccountParams, body: jsonBody(ServiceAccountUpdate) },
    responses: { 200: jsonAnswer(ServiceAccount, "The service account"), ...problemResponses(400, 401, 403, 404, 409, 413, 415) },
  }),
  async (c) => {
    const { alias, serviceAccountAlias } = c.req.valid("param");
    return c.json(await updateServiceAccount(c.env, alias, serviceAccountAlias, c.req.valid("json"), actorOf(c)), 200, noStore);
  },
);

serviceAccounts.openapi(
  createRoute({
    method: "delete",
    path: "/{alias}/{serviceAccountAlias}",
    tags,
    summary: "Delete a service account; its tokens stop working at once",
    middleware: [requireAccess("serviceAccounts", "write")] as const,
    request: { params: ServiceAccountParams },
    responses: { 204: { description: "Deleted" }, ...problemResponses(400, 401, 403, 404) },
  }),
  async (c) => {
    const { alias, serviceAccountAlias } = c.req.valid("param");
    await removeServiceAccount(c.env, alias, serviceAccountAlias, actorOf(c));
    return c.body(null, 204);
  },
);
