/**
 * Webhooks, the Worker side: each account's signing secret (created on first use, stored encrypted
 * like job secrets, rotated with a 24-hour overlap), an execution's deliveries, and redelivery.
 * Which events are delivered is the Execution object's decision (execution/webhooks.ts); sending
 * them is the queue consumer's (worker/callbacks.ts).
 */
import {
  getDelivery,
  getWebhookSecret,
  insertWebhookSecretOnce,
  listDeliveries as listDeliveryRows,
  markPending,
  rotateWebhookSecret as rotateRow,
  type DeliveryRow,
  type WebhookSecretRow,
} from "../db/webhooks";
import { bytesToBase64url } from "../lib/encoding";
import { conflict, notFound } from "../lib/problem";
import { decryptSecret, encryptSecret } from "../lib/secrets";
import type { Page, PageParams } from "../schemas/common";
import type { Delivery, WebhookSecret } from "../schemas/webhook";
import type { CallbackMessage, Scope } from "./contracts";
import type { Actor } from "../schemas/audit";
import { recordAudit, recordAuditAfter } from "./audit";
import { getExecution } from "./executions";

/** How long the previous secret keeps signing after a rotation. */
export const ROTATION_OVERLAP_MS = 24 * 3600 * 1000;

const newSecret = () => `whsec_${bytesToBase64url(crypto.getRandomValues(new Uint8Array(32)))}`;

async function secretRow(env: Env, accountAlias: string): Promise<WebhookSecretRow> {
  return (await getWebhookSecret(env.DB, accountAlias)) ?? insertWebhookSecretOnce(env.DB, accountAlias, await encryptSecret(env, newSecret()), Date.now());
}

async function viewOfSecret(env: Env, row: WebhookSecretRow, now: number): Promise<WebhookSecret> {
  const overlapping = row.previous_secret !== null && row.previous_until !== null && row.previous_until > now;
  return { secret: await decryptSecret(env, row.secret), createdTime: row.created_time, previousValidUntil: overlapping ? row.previous_until : null };
}

/** The account's signing secret; the first read creates it. Whoever reads it can sign: audited. */
export async function readWebhookSecret(env: Env, accountAlias: string, actor: Actor): Promise<WebhookSecret> {
  const view = await viewOfSecret(env, await secretRow(env, accountAlias), Date.now());
  await recordAudit(env, actor, { accountAlias, action: "webhookSecret.read", resource: { type: "webhook", id: accountAlias } });
  return view;
}

/** A new secret; the one it replaces keeps signing beside it for ROTATION_OVERLAP_MS. */
export async function rotateWebhookSecret(env: Env, accountAlias: string, actor: Actor): Promise<WebhookSecret> {
  // Compare-and-swap on the stored ciphertext: two rotations at once must not both keep the same previous.
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await secretRow(env, accountAlias);
    const now = Date.now();
    const next = await encryptSecret(env, newSecret());
    if (await rotateRow(env.DB, accountAlias, current.secret, next, now, now + ROTATION_OVERLAP_MS)) {
      await recordAuditAfter(env, actor, { accountAlias, action: "webhookSecret.rotated", resource: { type: "webhook", id: accountAlias } });
      return viewOfSecret(
        env,
        { ...current, secret: next, previous_secret: current.secret, previous_until: now + ROTATION_OVERLAP_MS, created_time: now },
        now,
      );
    }
  }
  throw conflict("The secret was rotated by another request at the same time; read it again.");
}

/** The secrets a delivery sent at `now` is signed with: the current one, then the previous while it overlaps. */
export async function signingSecrets(env: Env, accountAlias: string, now: number): Promise<string[]> {
  const row = await secretRow(env, accountAlias);
  const out = [await decryptSecret(env, row.secret)];
  if (row.previous_secret && row.previous_until !== null && row.previous_until > now) out.push(await decryptSecret(env, row.previous_secret));
  return out;
}

export function deliveryView(r: DeliveryRow): Delivery {
  return {
    delivery_id: r.id,
    execution_id: r.execution_id,
    job_id: r.job_id,
    account_alias: r.account_alias,
    url: r.url,
    level: r.level as Delivery["level"],
    event_type: r.event_type,
    event_sequence: r.event_seq,
    sequence: r.sequence,
    status: r.status,
    attempts: r.attempts,
    last_response_code: r.last_response_code,
    last_error: r.last_error,
    created_time: r.created_time,
    updated_time: r.updated_time,
    delivered_time: r.delivered_time,
  };
}

type ExecutionScope = Scope & { jobId: string };

/** The execution's deliveries in event order (404 when the execution is not in scope). */
export async function listDeliveries(env: Env, scope: ExecutionScope, executionId: string, p: PageParams): Promise<Page<Delivery>> {
  await getExecution(env, scope, executionId);
  const page = await listDeliveryRows(env.DB, { accountAlias: scope.accountAlias, jobId: scope.jobId, executionId }, p);
  return { ...page, results: page.results.map(deliveryView) };
}

/** Sends a delivery again: pending, a new queue message, the same delivery id (so a receiver can tell). */
export async function redeliver(env: Env, scope: ExecutionScope, executionId: string, id: string): Promise<Delivery> {
  const row = await getDelivery(env.DB, id);
  if (!row || row.execution_id !== executionId || row.account_alias !== scope.accountAlias || row.job_id !== scope.jobId) throw notFound("No such delivery.");
  const now = Date.now();
  await markPending(env.DB, id, now);
  const message: CallbackMessage = { deliveryId: id, accountAlias: row.account_alias, executionId, eventSeq: row.event_seq, callbackIndex: row.callback_index };
  await env.CALLBACKS.send(message);
  return deliveryView({ ...row, status: "pending", updated_time: now });
}
