/**
 * Password hashing for service accounts: salted PBKDF2-SHA256 through WebCrypto, the iteration
 * count kept beside each hash (so it can be raised: `needsRehash`), compared in constant time.
 */

import { base64ToBytes, bytesToBase64 } from "./encoding";

/**
 * Deployed Workers refuse PBKDF2 above 100,000 iterations (the call fails; local workerd accepts
 * more), so this is both the count new hashes use and the most any stored hash may ask for.
 */
export const PBKDF2_ITERATIONS = 100_000;
const SALT_BYTES = 16;
const HASH_BITS = 256;

export interface PasswordHash {
  /** base64 of the derived key */
  hash: string;
  /** base64 of the random salt */
  salt: string;
  iterations: number;
}

const b64 = bytesToBase64;
const unb64 = base64ToBytes;

async function derive(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > PBKDF2_ITERATIONS) {
    throw new Error(`PBKDF2 iteration count out of range: ${iterations}`); // a stored row, never input
  }
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, HASH_BITS));
}

export async function hashPassword(password: string, iterations = PBKDF2_ITERATIONS): Promise<PasswordHash> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  return { hash: b64(await derive(password, salt, iterations)), salt: b64(salt), iterations };
}

export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const expected = unb64(stored.hash);
  const actual = await derive(password, unb64(stored.salt), stored.iterations);
  // timingSafeEqual throws on a length mismatch; the lengths are not secret.
  return actual.byteLength === expected.byteLength && crypto.subtle.timingSafeEqual(actual, expected);
}

// A fixed salt is fine here: nothing is stored, the work only has to cost what a real check costs.
const DUMMY_SALT = new Uint8Array(SALT_BYTES);
const DUMMY_HASH = b64(new Uint8Array(HASH_BITS / 8));

/** The work of `verifyPassword` without a stored hash, for an unknown user; always false. */
export async function dummyVerifyPassword(password: string): Promise<false> {
  await verifyPassword(password, { hash: DUMMY_HASH, salt: b64(DUMMY_SALT), iterations: PBKDF2_ITERATIONS });
  return false;
}

/** A hash made with fewer iterations than new ones use is replaced at the next successful login. */
export const needsRehash = (stored: PasswordHash) => stored.iterations < PBKDF2_ITERATIONS;
