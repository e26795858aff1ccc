import { createRoute } from "@hono/zod-openapi";
import { listDeliveries, readWebhookSecret, redeliver, rotateWebhookSecret } from "../domain/webhooks";
import { requireAccess } from "../lib/auth";
import { actorOf } from "../lib/request-context";
import { jsonAnswer, router } from "../lib/hono";
import { problemResponses } from "../lib/problem";
import { AliasOnly, PageQuery } from "../schemas/common";
import { ExecutionParams } from "../schemas/execution";
import { Delivery, DeliveryPage, DeliveryParams, WebhookPayload, WebhookSecret } from "../schemas/webhook";

/** The account's webhook signing secret (admins). Mounted at /webhooks. */
export const webhooks = router();
/** An execution's webhook deliveries. Mounted at /jobs (beside the executions). */
export const deliveries = router();

const tags = ["Webhooks"];

// A receiver's body is documented though no route answers it.
webhooks.openAPIRegistry.register("WebhookPayload", WebhookPayload);

webhooks.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/secret",
    tags,
    summary: "The account's webhook signing secret (created on first read)",
    description: 'Deliveries carry `Runner-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed by this secret.',
    middleware: [requireAccess("webhooks", "read")] as const,
    request: { params: AliasOnly },
    responses: { 200: jsonAnswer(WebhookSecret, "The secret"), ...problemResponses(401, 403, 404) },
  }),
  async (c) => c.json(await readWebhookSecret(c.env, c.req.valid("param").alias, actorOf(c)), 200),
);

webhooks.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/secret/rotate",
    tags,
    summary: "A new signing secret; the previous one keeps signing beside it (a second v1=) for 24 hours",
    middleware: [requireAccess("webhooks", "write")] as const,
    request: { params: AliasOnly },
    responses: { 200: jsonAnswer(WebhookSecret, "The new secret"), ...problemResponses(401, 403, 404, 409) },
  }),
  async (c) => c.json(await rotateWebhookSecret(c.env, c.req.valid("param").alias, actorOf(c)), 200),
);

deliveries.openapi(
  createRoute({
    method: "get",
    path: "/{alias}/{jobId}/executions/{executionId}/deliveries",
    tags,
    summary: "The execution's webhook deliveries, in event order",
    middleware: [requireAccess("executions", "read")] as const,
    request: { params: ExecutionParams, query: PageQuery },
    responses: { 200: jsonAnswer(DeliveryPage, "A page of deliveries"), ...problemResponses(400, 401, 404) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await listDeliveries(c.env, { accountAlias: p.alias, jobId: p.jobId }, p.executionId, c.req.valid("query")), 200);
  },
);

deliveries.openapi(
  createRoute({
    method: "post",
    path: "/{alias}/{jobId}/executions/{executionId}/deliveries/{deliveryId}/redeliver",
    tags,
    summary: "Send a delivery again (a new attempt, the same delivery id)",
    middleware: [requireAccess("executions", "write")] as const,
    request: { params: DeliveryParams },
    responses: { 200: jsonAnswer(Delivery, "The delivery, pending"), ...problemResponses(401, 403, 404) },
  }),
  async (c) => {
    const p = c.req.valid("param");
    return c.json(await redeliver(c.env, { accountAlias: p.alias, jobId: p.jobId }, p.executionId, p.deliveryId), 200);
  },
);
