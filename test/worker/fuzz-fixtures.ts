/** Shared by the seeded fuzz tests: a replayable random source and the check every answer must pass. */
import { SELF } from "cloudflare:test";
import { expect } from "vitest";

/** Letters a client could send, including the awkward ones (NUL, control characters, quotes, non-ASCII). */
const ALPHABET = [..."abcXYZ019-_./%?#&=+ :@!$'()*,;~\u00e9\u4e2d\u{1F600}\u0000\u001f\"\\"];

/** mulberry32: the same seed replays the same requests, so a failure reproduces from its index. */
export function seeded(seed: number, opts: { longStrings?: number } = {}) {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => rnd() < p;
  /** Up to `max` letters of ALPHABET; now and then (`longStrings`) a very long one. */
  const randomString = (max = 40): string => {
    if (chance(opts.longStrings ?? 0.05)) return "x".repeat(int(20000));
    let s = "";
    for (let n = int(max); n > 0; n--) s += pick(ALPHABET);
    return s;
  };
  return { int, pick, chance, randomString };
}

/**
 * Sends one fuzz request through the Worker and checks what every answer must be: never a 5xx, and
 * every error problem+json. Counts statuses into `seen`; `what` names the request if it fails.
 */
export async function send(i: number, method: string, path: string, init: { headers: Record<string, string>; body?: BodyInit }, seen: Map<number, number>) {
  const bodyless = method === "GET" || method === "HEAD";
  const res = await SELF.fetch(`http://runner.test${path}`, { method, headers: init.headers, body: bodyless ? undefined : init.body });
  const text = await res.text();
  seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
  const what = `#${i} ${method} ${path.slice(0, 140)} → ${res.status} ${text.slice(0, 200)}`;
  expect(res.status, what).toBeLessThan(500);
  if (res.status >= 400 && method !== "HEAD") expect(res.headers.get("content-type"), what).toContain("application/problem+json");
}
