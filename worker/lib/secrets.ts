/**
 * Secrets at rest: AES-256-GCM through WebCrypto.
 *
 * Key ring: the Worker secret RUNNER_SECRETS_KEY = "kid:base64(32 bytes)[,kid:base64…]". The first
 * key encrypts; every listed key decrypts, so a key rotates by listing the new one first and
 * keeping the old one until everything written with it has been rewritten.
 *
 * Ciphertext format: "v1.<kid>.<iv base64url>.<ciphertext+tag base64url>". The "v1.<kid>" prefix
 * is bound as additional authenticated data, so a ciphertext cannot be relabelled to another key.
 */

import { base64ToBytes, bytesToBase64url } from "./encoding";

export type SecretsEnv = Pick<Env, "RUNNER_SECRETS_KEY">;

/** Any failure to encrypt or decrypt. Messages never contain key material or plaintext. */
export class SecretsError extends Error {
  override readonly name = "SecretsError";
}

const VERSION = "v1";
const KID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const IV_BYTES = 12;

interface KeyRing {
  primary: { kid: string; key: CryptoKey };
  byKid: Map<string, CryptoKey>;
}

// Importing keys costs a little; cache the parsed ring per isolate, keyed by the config string
// (a rotated secret is a different string, so it gets its own entry). An isolate sees one config,
// or two around a rotation: a few entries at most, the oldest dropped first.
const rings = new Map<string, Promise<KeyRing>>();
const MAX_RINGS = 4;

/** Test-only introspection (test/worker/memory-bounded.test.ts): entries of the ring cache. */
export const ringCacheSize = () => rings.size;

async function parseRing(config: string): Promise<KeyRing> {
  const entries = config
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new SecretsError("RUNNER_SECRETS_KEY is empty; expected 'kid:base64(32 bytes)[,kid:base64…]'.");
  const byKid = new Map<string, CryptoKey>();
  let primary: KeyRing["primary"] | undefined;
  for (const [i, entry] of entries.entries()) {
    const sep = entry.indexOf(":");
    const kid = sep > 0 ? entry.slice(0, sep) : "";
    if (!KID_RE.test(kid)) throw new SecretsError(`RUNNER_SECRETS_KEY entry ${i + 1} has no valid key id (1-64 of A-Z a-z 0-9 _ - before ':').`);
    if (byKid.has(kid)) throw new SecretsError(`RUNNER_SECRETS_KEY lists key id '${kid}' twice.`);
    let raw: Uint8Array;
    try {
      raw = base64ToBytes(entry.slice(sep + 1).trim());
    } catch {
      throw new SecretsError(`RUNNER_SECRETS_KEY key '${kid}' is not valid base64.`);
    }
    if (raw.length !== 32) throw new SecretsError(`RUNNER_SECRETS_KEY key '${kid}' must decode to 32 bytes (got ${raw.length}).`);
    const key = await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
    byKid.set(kid, key);
    primary ??= { kid, key };
  }
  return { primary: primary!, byKid };
}

function ring(env: SecretsEnv): Promise<KeyRing> {
  const config = env.RUNNER_SECRETS_KEY;
  if (typeof config !== "string" || !config.trim()) {
    return Promise.reject(new SecretsError("RUNNER_SECRETS_KEY is not configured."));
  }
  let p = rings.get(config);
  if (!p) {
    p = parseRing(config);
    rings.set(config, p);
    while (rings.size > MAX_RINGS) rings.delete(rings.keys().next().value!);
    // A bad config is not cached forever (it would mask a fix made without a new isolate).
    p.catch(() => rings.delete(config));
  }
  return p;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export async function encryptSecret(env: SecretsEnv, plaintext: string): Promise<string> {
  if (typeof plaintext !== "string") throw new SecretsError("Only strings can be encrypted.");
  const { primary } = await ring(env);
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const prefix = `${VERSION}.${primary.kid}`;
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode(prefix) }, primary.key, enc.encode(plaintext));
  return `${prefix}.${bytesToBase64url(iv)}.${bytesToBase64url(new Uint8Array(ct))}`;
}

export async function decryptSecret(env: SecretsEnv, ciphertext: string): Promise<string> {
  const parts = typeof ciphertext === "string" ? ciphertext.split(".") : [];
  if (parts.length !== 4 || parts[0] !== VERSION) throw new SecretsError("The stored secret is not in the 'v1.<kid>.<iv>.<ciphertext>' format.");
  const [, kid, ivText, ctText] = parts as [string, string, string, string];
  const { byKid } = await ring(env);
  const key = byKid.get(kid);
  if (!key) throw new SecretsError(`The stored secret was encrypted with key id '${kid.slice(0, 64)}', which RUNNER_SECRETS_KEY does not list.`);
  let iv: Uint8Array, ct: Uint8Array;
  try {
    iv = base64ToBytes(ivText);
    ct = base64ToBytes(ctText);
  } catch {
    throw new SecretsError("The stored secret is not valid base64.");
  }
  if (iv.length !== IV_BYTES || ct.length < 16) throw new SecretsError("The stored secret is truncated.");
  let pt: ArrayBuffer;
  try {
    pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode(`${VERSION}.${kid}`) }, key, ct);
  } catch {
    throw new SecretsError(`The stored secret failed authentication with key '${kid}' (tampered, or the key changed).`);
  }
  try {
    return dec.decode(pt);
  } catch {
    throw new SecretsError("The stored secret is not UTF-8 text.");
  }
}

export async function encryptJson(env: SecretsEnv, value: unknown): Promise<string> {
  return encryptSecret(env, JSON.stringify(value));
}

export async function decryptJson<T = unknown>(env: SecretsEnv, ciphertext: string): Promise<T> {
  const text = await decryptSecret(env, ciphertext);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new SecretsError("The stored secret is not JSON.");
  }
}

/** The key id a ciphertext was written with (to find rows that still need re-encryption). */
export function secretKeyId(ciphertext: string): string | null {
  const parts = ciphertext.split(".");
  return parts.length === 4 && parts[0] === VERSION ? parts[1]! : null;
}
