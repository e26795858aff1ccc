/** Digests and random secrets (WebCrypto). Passwords have their own slow hash: lib/password.ts. */
import { bytesToBase64url, bytesToHex } from "./encoding";

export async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** SHA-256 hex: what is stored of a token or credential. High-entropy secrets need no slow hash. */
export async function hashSecret(text: string): Promise<string> {
  return bytesToHex(await sha256(text));
}

/** 32 random bytes (256 bits) from the platform CSPRNG, base64url. */
export function randomSecret(): string {
  return bytesToBase64url(crypto.getRandomValues(new Uint8Array(32)));
}
