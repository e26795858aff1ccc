import { bytesToHex } from "./encoding";

let lastMs = 0;
let seq = 0;

/**
 * A UUIDv7 (RFC 9562): time-ordered, with a per-isolate counter in `rand_a` so that ids made in
 * the same millisecond still sort by creation (lists break `created_time` ties by `id DESC`).
 */
export function newId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    seq = crypto.getRandomValues(new Uint16Array(1))[0]! & 0x3ff;
  } else if (++seq > 0xfff) {
    lastMs++;
    seq = 0;
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  let ms = lastMs;
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = 0x70 | (seq >> 8);
  b[7] = seq & 0xff;
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = bytesToHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The id of the execution a schedule starts for one slot: the same (schedule, slot) always gives
 * the same id, so a retried, overlapping or crashed-and-repeated tick reaches the same Execution
 * object, whose `init` is idempotent: each slot fires at most once. Laid out as a UUIDv7 whose
 * time is the slot's (the id says which slot it ran for); the rest is SHA-256 of schedule and slot.
 */
export async function slotExecutionId(scheduleId: string, slot: number): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`schedule\u0000${scheduleId}\u0000${slot}`)));
  const b = digest.slice(0, 16);
  let ms = slot;
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The id of the delivery of one event to one callback of an execution: the same three always give
 * the same id, so an outbox entry sent twice (a crash after the send, before it was crossed off)
 * records one delivery, and a receiver can tell a repeat by its `delivery_id`. Laid out as a UUID
 * (version 8: custom) of SHA-256 of the three.
 */
export async function deliveryId(executionId: string, callbackIndex: number, eventSeq: number): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`delivery\u0000${executionId}\u0000${callbackIndex}\u0000${eventSeq}`)),
  );
  const b = digest.slice(0, 16);
  b[6] = 0x80 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = bytesToHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
