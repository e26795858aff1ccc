import { createRoute } from "@hono/zod-openapi";
import { readSettings, updateSettings } from "../domain/settings";
import { requireAccess } from "../lib/auth";
import { actorOf } from "../lib/request-context";
import { jsonAnswer, jsonBody, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AliasOnly } from "../schemas/common";
import { AccountSettings } from "../schemas/settings";

/** The account's settings. Mounted at /accounts. */
export const accounts = router();

const tags = ["Accounts"];

accounts.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/settings",
    tags,
    summary: "The account's settings (the defaults until changed)",
    middleware: [requireAccess("settings", "read")] as const,
    request: { params: AliasOnly },
    responses: { 200: jsonAnswer(AccountSettings, "The settings"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => c.json(await readSettings(c.env, c.req.valid("param").alias), 200),
);

accounts.openapi(
  createRoute({
    method: "put",
    path: "/{alias}/settings",
    tags,
    summary: "Change the account's settings",
    description: "Members left out keep their current value. They apply to executions started (or restarted) after the change.",
    middleware: [requireAccess("settings", "write")] as const,
    request: { params: AliasOnly, body: jsonBody(AccountSettings) },
    responses: { 200: jsonAnswer(AccountSettings, "The settings as stored"), ...problemResponses(400, 401, 403, 404, 413, 415) },
  }),
  async (c) => c.json(await updateSettings(c.env, c.req.valid("param").alias, c.req.valid("json"), actorOf(c)), 200),
);
