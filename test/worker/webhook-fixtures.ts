/**
 * A webhook receiver for tests inside workerd. The Worker runs in the tests' isolate, so the
 * consumer's outbound `fetch` is the global one: replacing it puts the receiver in the test, for
 * the real queue's deliveries and for batches a test hands the consumer itself. Only URLs under
 * RECEIVER are intercepted; each path answers as the test says (200 by default).
 *
 * The signature check here is written apart from the Worker's (worker/lib/webhook-signature.ts),
 * from the README's description alone, so the two cannot share a mistake.
 */
import { vi } from "vitest";

export const RECEIVER = "https://hooks.example.com";

export interface Received {
  url: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  json: any;
  redirect: string | undefined;
  at: number;
}

type Answer = (r: Received, signal: AbortSignal | undefined) => Response | Promise<Response>;

export class Receiver {
  readonly received: Received[] = [];
  private readonly answers = new Map<string, Answer>();
  private spy?: ReturnType<typeof vi.spyOn>;

  install(): this {
    const real = globalThis.fetch.bind(globalThis);
    this.spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      if (!url.startsWith(RECEIVER)) return real(input, init);
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((v, k) => {
        headers[k] = v;
      });
      const body = typeof init?.body === "string" ? init.body : "";
      const path = new URL(url).pathname;
      const r: Received = { url, path, headers, body, json: JSON.parse(body), redirect: init?.redirect, at: Date.now() };
      this.received.push(r);
      const answer = this.answers.get(path);
      return answer ? answer(r, init?.signal ?? undefined) : new Response("ok", { status: 200 });
    });
    return this;
  }

  uninstall(): void {
    this.spy?.mockRestore();
  }

  /** How `path` answers from now on. */
  on(path: string, answer: Answer): void {
    this.answers.set(path, answer);
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  /** Waits until `path` has received `n` deliveries (and a moment more, to catch any extra). */
  async waitFor(path: string, n: number, timeoutMs = 15_000): Promise<Received[]> {
    const until = Date.now() + timeoutMs;
    while (this.at(path).length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 150));
    return this.at(path);
  }
}

const enc = new TextEncoder();

/** Hex of HMAC-SHA256(secret, message), by WebCrypto, with its own hex conversion. */
async function hmac(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: { name: "SHA-256" } }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign({ name: "HMAC" }, key, enc.encode(message)));
  let hex = "";
  for (const byte of mac) hex += (byte < 16 ? "0" : "") + byte.toString(16);
  return hex;
}

/** `Runner-Signature` read as the README describes it: `t=…` and one or more `v1=…`. */
export function parseSignature(header: string | undefined): { t: number; v1: string[] } {
  const out = { t: Number.NaN, v1: [] as string[] };
  for (const part of (header ?? "").split(",")) {
    const eq = part.indexOf("=");
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === "t") out.t = Number(v);
    else if (k === "v1") out.v1.push(v);
  }
  return out;
}

/** Which of the header's `v1` signatures `secret` made over this body (their indexes). */
export async function signedBy(r: Received, secret: string): Promise<number[]> {
  const { t, v1 } = parseSignature(r.headers["runner-signature"]);
  const expected = await hmac(secret, `${t}.${r.body}`);
  return v1.flatMap((v, i) => (v === expected ? [i] : []));
}
