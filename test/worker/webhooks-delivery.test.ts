import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CALLBACKS_DLQ,
  CALLBACKS_QUEUE,
  DELIVERY_TIMEOUT_MS,
  deliverBatch,
  MAX_RETRIES,
  onQueue,
  parseRetryAfter,
  retryDelaySeconds,
} from "../../worker/callbacks";
import { getDelivery, insertDeliveries } from "../../worker/db/webhooks";
import type { CallbackMessage } from "../../worker/domain/contracts";
import { deliveryId } from "../../worker/lib/ids";
import { executionIn, newJob } from "./execution-fixtures";
import { api, token } from "./helpers";
import { RECEIVER, Receiver, signedBy } from "./webhook-fixtures";

/**
 * The consumer, driven message by message (createMessageBatch / getQueueResult): retries and their
 * delays, dead letters, the URL checked before each send, concurrency within a batch, signing
 * across a rotation; and the routes (secret, deliveries, redeliver).
 *
 * Deliveries here are recorded by hand against a real execution (one without callbacks, so the
 * real queue carries none of them): each test alone decides when its messages are handled.
 */
const ALIAS = "hooks-delivery";
const receiver = new Receiver();
let jobId: string;
let executionId: string;
let n = 0;

beforeAll(async () => {
  receiver.install();
  jobId = await newJob(ALIAS);
  executionId = await executionIn(ALIAS, jobId, "SUCCESS");
});
afterAll(() => receiver.uninstall());

/** A pending delivery of the execution's first event to `url`, and its queue message. */
async function delivery(url: string, eventSeq = 1): Promise<CallbackMessage> {
  const callbackIndex = n++;
  const id = await deliveryId(executionId, callbackIndex, eventSeq);
  await env.DB.batch(
    insertDeliveries(env.DB, [
      {
        id,
        account_alias: ALIAS,
        job_id: jobId,
        execution_id: executionId,
        callback_index: callbackIndex,
        url,
        level: "DEBUG",
        event_seq: eventSeq,
        event_type: "execution_status",
        sequence: 1,
        created_time: Date.now(),
      },
    ]),
  );
  return { deliveryId: id, accountAlias: ALIAS, executionId, eventSeq, callbackIndex };
}

let msg = 0;
/**
 * Hands the consumer one batch, as the queue would (`attempts` as the queue counts them). Answers
 * the queue's result, and the delay each retry asked for (which getQueueResult does not keep).
 */
async function consume(messages: CallbackMessage[], attempts = 1, opts: Parameters<typeof deliverBatch>[2] = { random: () => 1 }) {
  const batch = createMessageBatch<CallbackMessage>(
    CALLBACKS_QUEUE,
    messages.map((body) => ({ id: `m${++msg}`, timestamp: new Date(), attempts, body })),
  );
  const delays: Record<string, number | undefined> = {};
  for (const m of batch.messages) {
    const retry = m.retry.bind(m);
    m.retry = (o?: QueueRetryOptions) => {
      delays[m.id] = o?.delaySeconds;
      retry(o);
    };
  }
  const ctx = createExecutionContext();
  await deliverBatch(batch, env, opts);
  const result = await getQueueResult(batch, ctx);
  const ids = batch.messages.map((m) => m.id);
  return { result, ids, delays };
}

const row = async (m: CallbackMessage) => (await getDelivery(env.DB, m.deliveryId))!;

describe("webhook delivery (happy)", () => {
  it("acknowledges a 2xx and records it delivered", async () => {
    const m = await delivery(`${RECEIVER}/ok`);
    receiver.on("/ok", () => new Response(null, { status: 204 }));
    const { result, ids } = await consume([m]);
    expect(result.explicitAcks).toEqual(ids);
    expect(result.retryMessages).toEqual([]);
    expect(await row(m)).toMatchObject({ status: "delivered", attempts: 1, last_response_code: 204, last_error: null, delivered_time: expect.any(Number) });
    // A second copy of the same message (the queue delivers at least once) sends nothing.
    const before = receiver.at("/ok").length;
    expect((await consume([m])).result.explicitAcks).toHaveLength(1);
    expect(receiver.at("/ok")).toHaveLength(before);
  });

  it("retries a failure with backoff, then succeeds on a later attempt", async () => {
    const m = await delivery(`${RECEIVER}/flaky`);
    receiver.on("/flaky", () => new Response("no", { status: 500 }));
    const first = await consume([m], 1, { random: () => 0 });
    expect(first.result.explicitAcks).toEqual([]);
    // 10 s after the first failure, jittered to between half of it and all of it.
    expect(first.result.retryMessages).toEqual([{ msgId: first.ids[0] }]);
    expect(first.delays).toEqual({ [first.ids[0]!]: 5 });
    expect(await row(m)).toMatchObject({ status: "pending", attempts: 1, last_response_code: 500, last_error: "HTTP 500" });
    receiver.on("/flaky", () => new Response("ok"));
    const second = await consume([m], 2);
    expect(second.result.explicitAcks).toEqual(second.ids);
    expect(await row(m)).toMatchObject({ status: "delivered", attempts: 2, last_response_code: 200, last_error: null });
    // The same delivery id both times; the signature made afresh for each send.
    const got = receiver.at("/flaky");
    expect(got.map((r) => r.json.delivery_id)).toEqual([m.deliveryId, m.deliveryId]);
  });

  it("backs off exponentially with jitter, capped, and never sooner than Retry-After", async () => {
    expect([1, 2, 3, 4].map((a) => retryDelaySeconds(a, null, () => 1))).toEqual([10, 20, 40, 80]);
    expect([1, 2, 3, 4].map((a) => retryDelaySeconds(a, null, () => 0))).toEqual([5, 10, 20, 40]);
    expect(retryDelaySeconds(30, null, () => 1)).toBe(3600);
    expect(retryDelaySeconds(1, 120, () => 1)).toBe(120);
    expect(retryDelaySeconds(1, 10 ** 9, () => 1)).toBe(43_200); // the queue's longest delay
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("90", now)).toBe(90);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:05:00 GMT", now)).toBe(300);
    expect(parseRetryAfter("soon", now)).toBeNull();

    const m = await delivery(`${RECEIVER}/busy`);
    receiver.on("/busy", () => new Response("slow down", { status: 429, headers: { "retry-after": "600" } }));
    const busy = await consume([m]);
    expect(busy.result.retryMessages).toHaveLength(1);
    expect(busy.delays[busy.ids[0]!]).toBe(600);
    const date = await delivery(`${RECEIVER}/busy-date`);
    receiver.on("/busy-date", () => new Response("later", { status: 503, headers: { "retry-after": new Date(Date.now() + 900_000).toUTCString() } }));
    const later = await consume([date]);
    const d = later.delays[later.ids[0]!]!;
    expect(d).toBeGreaterThanOrEqual(898);
    expect(d).toBeLessThanOrEqual(901);
  });

  it("after the last retry records the delivery failed and lets the queue dead-letter it; the dead-letter consumer marks the rest", async () => {
    const m = await delivery(`${RECEIVER}/down`);
    receiver.on("/down", () => new Response("down", { status: 502 }));
    const { result, ids } = await consume([m], MAX_RETRIES + 1);
    // Retried past max_retries: the queue moves it to runner-callbacks-dlq.
    expect(result.retryMessages.map((r) => r.msgId)).toEqual(ids);
    expect(await row(m)).toMatchObject({ status: "failed", attempts: 1, last_response_code: 502, last_error: "HTTP 502" });
    const list = await api("GET", `/jobs/${ALIAS}/${jobId}/executions/${executionId}/deliveries?size=100`, { token: await token([ALIAS], "viewer") });
    expect(list.json.results.find((d: any) => d.delivery_id === m.deliveryId)).toMatchObject({ status: "failed", last_response_code: 502, attempts: 1 });

    // The dead letter of it keeps what was recorded; one whose consumer never recorded it is failed now.
    const lost = await delivery(`${RECEIVER}/lost`);
    const dlq = createMessageBatch<CallbackMessage>(
      CALLBACKS_DLQ,
      [m, lost].map((body) => ({ id: `d${++msg}`, timestamp: new Date(), attempts: 1, body })),
    );
    const ctx = createExecutionContext();
    await onQueue(dlq, env);
    expect((await getQueueResult(dlq, ctx)).explicitAcks).toHaveLength(2);
    expect(await row(m)).toMatchObject({ status: "failed", last_error: "HTTP 502" });
    expect(await row(lost)).toMatchObject({ status: "failed", attempts: 0, last_error: "dead-lettered: retries exhausted" });
  });

  it("treats a timeout and a refused connection as failures to retry, and never follows a redirect", async () => {
    const slow = await delivery(`${RECEIVER}/hang`);
    receiver.on(
      "/hang",
      (_r, signal) =>
        new Promise<Response>((_, reject) => {
          signal?.addEventListener("abort", () => reject(signal.reason));
        }),
    );
    const t = await consume([slow], 1, { timeoutMs: 200, random: () => 1 });
    expect(t.result.retryMessages).toHaveLength(1);
    expect(await row(slow)).toMatchObject({ status: "pending", attempts: 1, last_response_code: null, last_error: "no answer within 0.2 s" });
    expect(DELIVERY_TIMEOUT_MS).toBe(10_000);

    const moved = await delivery(`${RECEIVER}/moved`);
    receiver.on("/moved", () => new Response(null, { status: 302, headers: { location: "http://169.254.169.254/latest/meta-data/" } }));
    const r = await consume([moved]);
    expect(r.result.retryMessages).toHaveLength(1);
    expect(receiver.at("/moved")[0]!.redirect).toBe("manual");
    expect(await row(moved)).toMatchObject({ status: "pending", last_response_code: 302, last_error: "HTTP 302: redirects are not followed" });

    const refused = await delivery(`${RECEIVER}/refused`);
    receiver.on("/refused", () => {
      throw new TypeError("connection refused");
    });
    expect((await consume([refused])).result.retryMessages).toHaveLength(1);
    expect((await row(refused)).last_error).toBe("could not send: connection refused");
  });

  it("checks the URL again before each send: one refused now fails without a request", async () => {
    const before = receiver.received.length;
    for (const url of [
      "https://169.254.169.254/latest/meta-data/",
      "https://0xa000001/",
      "https://[::ffff:a9fe:a9fe]/",
      "https://hooks.internal/x",
      "https://u:p@hooks.example.com/x",
    ]) {
      const m = await delivery(url);
      const { result, ids } = await consume([m]);
      expect(result.explicitAcks).toEqual(ids);
      expect(await row(m)).toMatchObject({ status: "failed", attempts: 0, last_error: expect.stringMatching(/^not sent: the URL must not/) });
    }
    // Loopback is local development's, and only while ALLOW_LOOPBACK_HTTP says so (these tests have it on).
    const local = await delivery("https://0x7f000001:9/x");
    await deliverBatch(createMessageBatch<CallbackMessage>(CALLBACKS_QUEUE, [{ id: "l1", timestamp: new Date(), attempts: 1, body: local }]), {
      ...env,
      ALLOW_LOOPBACK_HTTP: "false",
    });
    expect(await row(local)).toMatchObject({ status: "failed", last_error: expect.stringMatching(/loopback/) });
    expect(receiver.received.length).toBe(before);
  });

  it("sends a batch's messages at once: a slow receiver does not hold up another", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    receiver.on("/slow", async () => {
      await held;
      return new Response("finally");
    });
    receiver.on("/fast", () => new Response("ok"));
    const slow = await delivery(`${RECEIVER}/slow`);
    const fast = await delivery(`${RECEIVER}/fast`);
    const batch = createMessageBatch<CallbackMessage>(
      CALLBACKS_QUEUE,
      [slow, fast].map((body) => ({ id: `m${++msg}`, timestamp: new Date(), attempts: 1, body })),
    );
    const ctx = createExecutionContext();
    const done = deliverBatch(batch, env);
    // The fast one is delivered while the slow one still waits.
    for (let i = 0; i < 200 && (await row(fast)).status !== "delivered"; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await row(fast)).toMatchObject({ status: "delivered" });
    expect(await row(slow)).toMatchObject({ status: "pending", attempts: 0 });
    release();
    await done;
    expect((await getQueueResult(batch, ctx)).explicitAcks.sort()).toEqual(batch.messages.map((m) => m.id).sort());
    expect(await row(slow)).toMatchObject({ status: "delivered" });
  });

  it("signs with the new and the previous secret for 24 hours after a rotation, then with the new one only", async () => {
    const admin = await token([ALIAS], "admin");
    const first = await api("GET", `/webhooks/${ALIAS}/secret`, { token: admin });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ secret: expect.stringMatching(/^whsec_[A-Za-z0-9_-]{43}$/), previousValidUntil: null });
    // The same secret on every read; stored encrypted, never in the clear.
    expect((await api("GET", `/webhooks/${ALIAS}/secret`, { token: admin })).json.secret).toBe(first.json.secret);
    const stored = await env.DB.prepare("SELECT secret FROM webhook_secrets WHERE account_alias = ?").bind(ALIAS).first<{ secret: string }>();
    expect(stored!.secret).toMatch(/^v1\./);
    expect(stored!.secret).not.toContain(first.json.secret);

    const old = first.json.secret as string;
    const m1 = await delivery(`${RECEIVER}/rot`);
    receiver.on("/rot", () => new Response("ok"));
    await consume([m1]);
    expect(await signedBy(receiver.at("/rot")[0]!, old)).toEqual([0]);

    const rotated = await api("POST", `/webhooks/${ALIAS}/secret/rotate`, { token: admin });
    expect(rotated.status).toBe(200);
    const fresh = rotated.json.secret as string;
    expect(fresh).not.toBe(old);
    expect(rotated.json.previousValidUntil - Date.now()).toBeGreaterThan(24 * 3600_000 - 60_000);
    expect((await api("GET", `/webhooks/${ALIAS}/secret`, { token: admin })).json).toMatchObject({
      secret: fresh,
      previousValidUntil: rotated.json.previousValidUntil,
    });

    const m2 = await delivery(`${RECEIVER}/rot`);
    await consume([m2]);
    const during = receiver.at("/rot")[1]!;
    expect(await signedBy(during, fresh)).toEqual([0]);
    expect(await signedBy(during, old)).toEqual([1]);

    // 24 hours on (the overlap's end moved into the past): the previous one no longer signs.
    await env.DB.prepare("UPDATE webhook_secrets SET previous_until = ? WHERE account_alias = ?")
      .bind(Date.now() - 1, ALIAS)
      .run();
    const m3 = await delivery(`${RECEIVER}/rot`);
    await consume([m3]);
    const after = receiver.at("/rot")[2]!;
    expect(await signedBy(after, fresh)).toEqual([0]);
    expect(await signedBy(after, old)).toEqual([]);
    expect(after.headers["runner-signature"]!.match(/v1=/g)).toHaveLength(1);
    expect((await api("GET", `/webhooks/${ALIAS}/secret`, { token: admin })).json.previousValidUntil).toBeNull();
  });

  it("redelivers: a new attempt through the queue, the same delivery id", async () => {
    const m = await delivery(`${RECEIVER}/again`);
    receiver.on("/again", () => new Response("no", { status: 500 }));
    await consume([m], MAX_RETRIES + 1);
    expect(await row(m)).toMatchObject({ status: "failed", attempts: 1 });
    receiver.on("/again", () => new Response("ok"));
    const path = `/jobs/${ALIAS}/${jobId}/executions/${executionId}/deliveries/${m.deliveryId}/redeliver`;
    const r = await api("POST", path, { token: await token([ALIAS], "user") });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ delivery_id: m.deliveryId, status: "pending", attempts: 1 });
    // The real queue hands it to the consumer.
    const got = await receiver.waitFor("/again", 2);
    expect(got.map((x) => x.json.delivery_id)).toEqual([m.deliveryId, m.deliveryId]);
    for (let i = 0; i < 100 && (await row(m)).status !== "delivered"; i++) await new Promise((res) => setTimeout(res, 20));
    expect(await row(m)).toMatchObject({ status: "delivered", attempts: 2, last_response_code: 200 });
  });
});

describe("webhook routes (error)", () => {
  it("answers 404 for a delivery or execution out of scope, and pages the list", async () => {
    const user = await token([ALIAS], "user");
    const m = await delivery(`${RECEIVER}/scope`);
    const other = await newJob(ALIAS);
    expect((await api("POST", `/jobs/${ALIAS}/${other}/executions/${executionId}/deliveries/${m.deliveryId}/redeliver`, { token: user })).status).toBe(404);
    expect((await api("POST", `/jobs/${ALIAS}/${jobId}/executions/${executionId}/deliveries/${crypto.randomUUID()}/redeliver`, { token: user })).status).toBe(
      404,
    );
    expect((await api("GET", `/jobs/${ALIAS}/${jobId}/executions/${crypto.randomUUID()}/deliveries`, { token: user })).status).toBe(404);
    expect((await api("GET", `/jobs/other-acct/${jobId}/executions/${executionId}/deliveries`, { token: await token(["other-acct"], "admin") })).status).toBe(
      404,
    );
    const page = await api("GET", `/jobs/${ALIAS}/${jobId}/executions/${executionId}/deliveries?size=2&page=1`, { token: user });
    expect(page.status).toBe(200);
    expect(page.json).toMatchObject({ page: 1, size: 2, totalSize: n });
    expect(page.json.results).toHaveLength(2);
    expect((await api("GET", `/jobs/${ALIAS}/${jobId}/executions/${executionId}/deliveries?size=0`, { token: user })).json.errors[0].field).toBe("size");
  });
});
