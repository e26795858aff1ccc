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
