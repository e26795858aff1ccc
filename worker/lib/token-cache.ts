/**
 * Verified bearer tokens, per isolate: an ES256 signature check is most of what an authenticated
 * read costs, and a client sends the same token many times. An entry is the payload's verdict (the
 * principal, and the service-account version claim that is still checked against D1 on every
 * request: a revoked token stays refused at once). It is kept until the token's `exp` or
 * `TOKEN_CACHE_TTL_MS` after it was verified, whichever comes first, and is keyed by the SHA-256 of
 * the token: the token itself is never held. At most `TOKEN_CACHE_MAX` entries, the least recently
 * used dropped first; a change of the trust configuration (keys, issuers) empties it.
 */
import { bytesToBase64url } from "./encoding";
import { sha256 } from "./hash";

export const TOKEN_CACHE_MAX = 1000;
export const TOKEN_CACHE_TTL_MS = 60_000;

export interface VerifiedToken<P> {
  principal: P;
  /** Set for a service account's login token: its version claim (checked on every use). */
  tokenVersion?: unknown;
  /** Epoch ms after which the entry is not used (min(exp, verification + TTL)). */
  until: number;
}

export class TokenCache<P> {
  private readonly entries = new Map<string, VerifiedToken<P>>();
  private config = "";

  constructor(
    private readonly max = TOKEN_CACHE_MAX,
    private readonly ttlMs = TOKEN_CACHE_TTL_MS,
  ) {}

  /** The key of a token: its SHA-256. */
  async keyOf(token: string): Promise<string> {
    return bytesToBase64url(await sha256(token));
  }

  /** The entry for `key` under trust configuration `config`, if it is still good at `now`. */
  get(config: string, key: string, now = Date.now()): VerifiedToken<P> | undefined {
    if (config !== this.config) {
      this.entries.clear();
      this.config = config;
      return undefined;
    }
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.entries.delete(key);
    if (now >= hit.until) return undefined;
    this.entries.set(key, hit); // most recently used last
    return hit;
  }

  /** Remembers a token verified at `now` whose `exp` is `expSeconds`. */
  set(config: string, key: string, entry: Omit<VerifiedToken<P>, "until">, expSeconds: number, now = Date.now()): void {
    if (config !== this.config) {
      this.entries.clear();
      this.config = config;
    }
    const until = Math.min(expSeconds * 1000, now + this.ttlMs);
    if (!(until > now)) return;
    this.entries.delete(key);
    this.entries.set(key, { ...entry, until });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}
