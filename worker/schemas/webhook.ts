import { z } from "@hono/zod-openapi";
import { pageSchema, pathParam } from "./common";
import { ExecutionParams, ExecutionView, StatusEvent } from "./execution";

/**
 * Webhooks: the account's signing secret, the deliveries of an execution (snake_case, like the
 * executions they belong to), and the body a receiver gets.
 */

export const WebhookSecret = z
  .object({
    secret: z
      .string()
      .openapi({ description: "HMAC-SHA256 key of Runner-Signature's v1 (its UTF-8 bytes).", example: "whsec_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }),
    createdTime: z.number().int(),
    previousValidUntil: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "After a rotation, the previous secret signs too (a second v1=) until this time; null when there is none." }),
  })
  .openapi("WebhookSecret");
export type WebhookSecret = z.infer<typeof WebhookSecret>;

export const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;

export const Delivery = z
  .object({
    delivery_id: z.string(),
    execution_id: z.string(),
    job_id: z.string(),
    account_alias: z.string(),
    url: z.string(),
    level: z.enum(["DEBUG", "ERROR", "RESULT"]),
    event_type: z.string(),
    event_sequence: z.number().int().openapi({ description: "The event's sequence in the execution." }),
    sequence: z.number().int().openapi({ description: "The delivery's sequence, increasing per execution and URL." }),
    status: z
      .enum(DELIVERY_STATUSES)
      .openapi({ description: "pending (queued or being retried), delivered (a 2xx), failed (retries exhausted, or the URL is refused)." }),
    attempts: z.number().int(),
    last_response_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_time: z.number().int(),
    updated_time: z.number().int(),
    delivered_time: z.number().int().nullable(),
  })
  .openapi("Delivery");
export type Delivery = z.infer<typeof Delivery>;

export const DeliveryPage = pageSchema(Delivery, "DeliveryPage");

/** `…/executions/{executionId}/deliveries/{deliveryId}` */
export const DeliveryParams = ExecutionParams.extend({ deliveryId: pathParam("deliveryId") });

/** What a receiver gets: one JSON object per delivery (documented in /openapi.json, never parsed here). */
export const WebhookPayload = z
  .object({
    delivery_id: z.string().openapi({ description: "The same on every attempt and redelivery: a receiver drops repeats by it." }),
    event_type: z.string(),
    sequence: z.number().int().openapi({ description: "Increasing per execution and URL: the order to apply deliveries in." }),
    account_alias: z.string(),
    job_id: z.string(),
    execution_id: z.string(),
    timestamp: z.number().int().openapi({ description: "When this attempt was sent (ms since the epoch)." }),
    /** The status event, as GET …/events answers it. */
    event: StatusEvent,
    /** On the final status only: the execution as it ended. */
    execution: ExecutionView.optional(),
  })
  .openapi("WebhookPayload");
export type WebhookPayload = z.infer<typeof WebhookPayload>;
