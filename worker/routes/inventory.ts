import { createRoute } from "@hono/zod-openapi";
import { readInventory, replaceInventory } from "../domain/inventory";
import { requireAccess } from "../lib/auth";
import { actorOf } from "../lib/request-context";
import { jsonAnswer, jsonBody, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AliasOnly } from "../schemas/common";
import { Inventory } from "../schemas/inventory";

/** The account inventory (dynamic-inventory jobs run on it). Mounted at /inventory. */
export const inventory = router();

const tags = ["Inventory"];

inventory.openapi(
  createRoute({
    method: "get",
    path: "/{alias}",
    tags,
    summary: "The account's inventory ({hosts: []} when it has none)",
    middleware: [requireAccess("inventory", "read")] as const,
    request: { params: AliasOnly },
    responses: { 200: jsonAnswer(Inventory, "The inventory"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => c.json(await readInventory(c.env, c.req.valid("param").alias), 200),
);

inventory.openapi(
  createRoute({
    method: "put",
    path: "/{alias}",
    tags,
    summary: "Replace the account's inventory, whole",
    description: "Host vars are not secrets: they are stored and answered as given. Keys belong on the job (sshPrivateKey).",
    middleware: [requireAccess("inventory", "write")] as const,
    request: { params: AliasOnly, body: jsonBody(Inventory) },
    responses: { 200: jsonAnswer(Inventory, "The inventory as stored"), ...problemResponses(400, 401, 403, 404, 413, 415) },
  }),
  async (c) => c.json(await replaceInventory(c.env, c.req.valid("param").alias, c.req.valid("json"), actorOf(c)), 200),
);
