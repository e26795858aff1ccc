/**
 * The webhook signature (README, "Webhooks"): `Runner-Signature: t=<unix seconds>,v1=<hex>` where
 * each `v1` is HMAC-SHA256 of `"<t>.<body>"` keyed by one of the account's secrets (its UTF-8
 * bytes): the current one first, then, for 24 hours after a rotation, the previous one. A receiver
 * accepts a delivery when any `v1` matches its secret and `t` is recent.
 */
import { bytesToHex } from "./encoding";

const enc = new TextEncoder();

async function hmacHex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return bytesToHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(message))));
}

/** The header's value for `body` sent at `t` (unix seconds), signed with each of `secrets` in order. */
export async function signatureHeader(secrets: readonly string[], body: string, t: number): Promise<string> {
  const sigs = await Promise.all(secrets.map((s) => hmacHex(s, `${t}.${body}`)));
  return [`t=${t}`, ...sigs.map((v) => `v1=${v}`)].join(",");
}
