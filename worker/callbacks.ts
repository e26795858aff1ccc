/**
 * The CALLBACKS queue's consumer: sends webhook deliveries (README, "Webhooks").
 *
 * A message is a reference (delivery id, execution, event sequence, callback index); the delivery's
 * row in D1 says where and what, the Execution object answers the event. Each message of a batch
 * is sent at once beside the others and settled on its own (ack, or retry with its own delay), so
 * one slow or hostile receiver never holds up another receiver or another account. A 2xx
 * acknowledges; anything else, a timeout or a refused connection is retried with exponential
 * backoff and jitter (at least what `Retry-After` asks), up to wrangler.toml's max_retries; the
 * last failure is recorded as failed and retried once more, which the queue turns into a move to
 * the dead-letter queue, whose consumer (below) marks as failed whatever was not already.
 */
import type { CallbackMessage } from "./domain/contracts";
import { parseStatusEvent } from "./domain/contracts";
import { executionClient } from "./domain/execution-client";
import { signingSecrets } from "./domain/webhooks";
import { failDelivery, getDelivery, recordAttempt, type DeliveryRow } from "./db/webhooks";
import { backoffMs } from "./lib/backoff";
import { callbackUrlProblem } from "./lib/callback-url";
import { log } from "./lib/log";
import { signatureHeader } from "./lib/webhook-signature";
import type { WebhookPayload } from "./schemas/webhook";

export const CALLBACKS_QUEUE = "runner-callbacks";
export const CALLBACKS_DLQ = "runner-callbacks-dlq";
/** wrangler.toml's `max_retries` for runner-callbacks: a message is tried this many times and once more. */
export const MAX_RETRIES = 8;
/** How long a receiver has to answer. */
export const DELIVERY_TIMEOUT_MS = 10_000;
const RETRY_BASE_MS = 10_000;
const RETRY_MAX_MS = 3_600_000;
/** The most a queue message may be delayed (Queues' limit: 12 hours). */
const MAX_DELAY_S = 43_200;
const USER_AGENT = "Runner-Webhooks/1.0 (Runner, a job service for Ansible)";
/** How much of a failure's text is kept in `last_error`. */
const MAX_ERROR = 300;

export interface DeliverOptions {
  timeoutMs?: number;
  /** For tests: the jitter's random source. */
  random?: () => number;
}

/** The queue handler: deliveries from runner-callbacks, dead letters from its DLQ. */
export async function onQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  if (batch.queue === CALLBACKS_DLQ) return deadLettered(batch as MessageBatch<CallbackMessage>, env);
  if (batch.queue === CALLBACKS_QUEUE) return deliverBatch(batch as MessageBatch<CallbackMessage>, env);
  log.error("queue: a batch from an unknown queue; acknowledged", { queue: batch.queue, messages: batch.messages.length });
  batch.ackAll();
}

/**
 * Seconds until the next try after `attempts` tries: the backoff (10 s doubling to an hour) with
 * jitter (half of it, plus up to another half at random), and never less than the receiver's
 * `Retry-After` (seconds), nor more than a queue delay may be.
 */
export function retryDelaySeconds(attempts: number, retryAfterS: number | null, random: () => number = Math.random): number {
  const b = backoffMs(attempts, RETRY_BASE_MS, RETRY_MAX_MS) / 1000;
  const jittered = b / 2 + random() * (b / 2);
  return Math.min(MAX_DELAY_S, Math.ceil(Math.max(jittered, retryAfterS ?? 0)));
}

/** `Retry-After` in seconds from now: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

export async function deliverBatch(batch: MessageBatch<CallbackMessage>, env: Env, opts: DeliverOptions = {}): Promise<void> {
  // One read (and decryption) of an account's secrets per batch.
  const secrets = new Map<string, Promise<string[]>>();
  const secretsOf = (account: string, now: number) => {
    let p = secrets.get(account);
    if (!p) secrets.set(account, (p = signingSecrets(env, account, now)));
    return p;
  };
  await Promise.all(
    batch.messages.map((m) =>
      deliverOne(m, env, secretsOf, opts).catch((e) => {
        // Our side failed (D1, the object): not the receiver's fault, but retried the same way.
        log.error("callbacks: delivery could not be attempted; retrying", { deliveryId: m.body?.deliveryId, attempts: m.attempts, error: e });
        m.retry({ delaySeconds: retryDelaySeconds(m.attempts, null, opts.random) });
      }),
    ),
  );
}

async function deliverOne(
  m: Message<CallbackMessage>,
  env: Env,
  secretsOf: (account: string, now: number) => Promise<string[]>,
  opts: DeliverOptions,
): Promise<void> {
  const row = typeof m.body?.deliveryId === "string" ? await getDelivery(env.DB, m.body.deliveryId) : null;
  // Gone, or settled by an earlier copy of this message: nothing to send.
  if (row?.status !== "pending") return m.ack();
  const now = Date.now();
  // Checked again before each send: the job may have been saved under older rules, or the setting changed.
  const refused = callbackUrlProblem(row.url, env.ALLOW_LOOPBACK_HTTP === "true");
  if (refused) {
    await failDelivery(env.DB, row.id, `not sent: the URL ${refused}`, now);
    return m.ack();
  }
  const content = await executionClient(env, row.execution_id).webhookContent(row.event_seq);
  if (!content) {
    await failDelivery(env.DB, row.id, "not sent: the execution no longer has this event", now);
    return m.ack();
  }
  const body = JSON.stringify(payloadOf(row, content.event, content.execution, now));
  const signature = await signatureHeader(await secretsOf(row.account_alias, now), body, Math.floor(now / 1000));

  const sent = await send(row.url, body, { signature, deliveryId: row.id, eventType: row.event_type }, opts.timeoutMs ?? DELIVERY_TIMEOUT_MS, now);
  if (sent.ok) {
    await recordAttempt(env.DB, row.id, { status: "delivered", responseCode: sent.code, error: null, at: Date.now() });
    return m.ack();
  }
  const last = m.attempts > MAX_RETRIES;
  await recordAttempt(env.DB, row.id, { status: last ? "failed" : "pending", responseCode: sent.code, error: sent.error, at: Date.now() });
  // The last failure is retried too: past max_retries the queue moves it to the dead-letter queue.
  m.retry({ delaySeconds: last ? 0 : retryDelaySeconds(m.attempts, sent.retryAfter, opts.random) });
}

function payloadOf(
  row: DeliveryRow,
  event: Parameters<typeof parseStatusEvent>[0],
  execution: WebhookPayload["execution"] | null,
  now: number,
): WebhookPayload {
  return {
    delivery_id: row.id,
    event_type: row.event_type,
    sequence: row.sequence,
    account_alias: row.account_alias,
    job_id: row.job_id,
    execution_id: row.execution_id,
    timestamp: now,
    event: parseStatusEvent(event),
    ...(execution ? { execution } : {}),
  };
}

interface Sent {
  ok: boolean;
  code: number | null;
  error: string | null;
  retryAfter: number | null;
}

async function send(url: string, body: string, h: { signature: string; deliveryId: string; eventType: string }, timeoutMs: number, now: number): Promise<Sent> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "runner-signature": h.signature,
        "runner-delivery": h.deliveryId,
        "runner-event": h.eventType,
      },
      body,
      // A redirect could point anywhere (an internal address, too): it is an answer, not followed.
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel(); // the answer's body is never read
    const code = res.status;
    if (code >= 200 && code < 300) return { ok: true, code, error: null, retryAfter: null };
    const error = code >= 300 && code < 400 ? `HTTP ${code}: redirects are not followed` : `HTTP ${code}`;
    return { ok: false, code, error, retryAfter: parseRetryAfter(res.headers.get("retry-after"), now) };
  } catch (e) {
    const timedOut = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError");
    const error = timedOut ? `no answer within ${timeoutMs / 1000} s` : `could not send: ${e instanceof Error ? e.message : String(e)}`;
    return { ok: false, code: null, error: error.slice(0, MAX_ERROR), retryAfter: null };
  }
}

/** Dead letters: whatever was not already recorded as failed (its consumer gave up without recording it) is now. */
export async function deadLettered(batch: MessageBatch<CallbackMessage>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (m) => {
      try {
        if (typeof m.body?.deliveryId === "string") await failDelivery(env.DB, m.body.deliveryId, "dead-lettered: retries exhausted", Date.now());
        log.warn("callbacks: delivery dead-lettered", { deliveryId: m.body?.deliveryId, executionId: m.body?.executionId });
        m.ack();
      } catch (e) {
        log.error("callbacks: could not record a dead letter; retrying", { deliveryId: m.body?.deliveryId, error: e });
        m.retry({ delaySeconds: 30 });
      }
    }),
  );
}
