import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { signToken, tokenCacheSize, verifyToken } from "../../worker/lib/auth";
import { TOKEN_CACHE_TTL_MS, TokenCache } from "../../worker/lib/token-cache";
import { api, token } from "./helpers";
import { loginToken, newServiceAccount } from "./service-account-fixtures";

/**
 * The verified-token cache (worker/lib/token-cache.ts): a token's signature is checked once, and
 * the verdict is used until the token's `exp` or a minute later, whichever comes first; at most a
 * bounded number of tokens, the least recently used dropped first.
 */
afterEach(() => vi.useRealTimers());

const A = "tok-cache";

describe("the verified-token cache", () => {
  it("a token verified once is answered from the cache, keyed by its hash (the token is not held)", async () => {
    const t = await token([A], "viewer", "cached-user");
    const before = tokenCacheSize();
    expect((await verifyToken(env, t)).sub).toBe("cached-user");
    expect(tokenCacheSize()).toBe(before + 1);
    expect((await verifyToken(env, t)).sub).toBe("cached-user");
    expect(tokenCacheSize()).toBe(before + 1);
    const cache = new TokenCache<string>();
    expect(await cache.keyOf(t)).not.toContain(t.split(".")[2]!);
    expect(await cache.keyOf(t)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("a cached token still expires at its exp (past the clock tolerance): 401, not the cache's minute", async () => {
    const t = await signToken(env, { sub: "short-lived", accounts: [A], role: "viewer" }, 10);
    expect((await api("GET", `/jobs/${A}`, { token: t })).status).toBe(200);
    // 45 s later: 35 s past exp (beyond the 30 s tolerance), well inside the cache's minute.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 45_000 });
    const r = await api("GET", `/jobs/${A}`, { token: t });
    expect(r.status).toBe(401);
    expect(r.json.detail).toMatch(/expired/);
  });

  it("an entry lasts no longer than min(exp, TTL) and is dropped when the trust configuration changes", () => {
    const cache = new TokenCache<string>(10, 60_000);
    const now = 1_000_000_000_000;
    cache.set("cfg", "a", { principal: "a" }, now / 1000 + 3600, now);
    expect(cache.get("cfg", "a", now + 59_999)?.principal).toBe("a");
    expect(cache.get("cfg", "a", now + 60_000)).toBeUndefined(); // the TTL
    cache.set("cfg", "b", { principal: "b" }, now / 1000 + 5, now);
    expect(cache.get("cfg", "b", now + 4_999)?.principal).toBe("b");
    expect(cache.get("cfg", "b", now + 5_000)).toBeUndefined(); // the token's exp
    cache.set("cfg", "c", { principal: "c" }, now / 1000 - 1, now);
    expect(cache.size).toBe(0); // already expired: never stored
    cache.set("cfg", "d", { principal: "d" }, now / 1000 + 3600, now);
    expect(cache.get("other keys", "d", now)).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(TOKEN_CACHE_TTL_MS).toBeLessThanOrEqual(60_000);
  });

  it("holds at most its bound, dropping the least recently used", () => {
    const cache = new TokenCache<number>(3, 60_000);
    const now = Date.now();
    for (const k of ["1", "2", "3"]) cache.set("cfg", k, { principal: Number(k) }, now / 1000 + 60, now);
    expect(cache.get("cfg", "1", now)?.principal).toBe(1); // now the most recently used
    cache.set("cfg", "4", { principal: 4 }, now / 1000 + 60, now);
    expect(cache.size).toBe(3);
    expect(cache.get("cfg", "2", now)).toBeUndefined();
    expect([cache.get("cfg", "1", now)?.principal, cache.get("cfg", "3", now)?.principal, cache.get("cfg", "4", now)?.principal]).toEqual([1, 3, 4]);
  });

  it("a service account's cached token is still refused the moment its version changes", async () => {
    const sa = await newServiceAccount(A, { alias: "cached-sa", role: "user" });
    const t = await loginToken(sa.username);
    for (let i = 0; i < 3; i++) expect((await api("GET", `/jobs/${A}`, { token: t })).status).toBe(200);
    const put = await api("PUT", `/serviceAccounts/${A}/cached-sa`, { token: await token([A], "admin"), body: { role: "viewer" } });
    expect(put.status).toBe(200);
    const r = await api("GET", `/jobs/${A}`, { token: t });
    expect(r.status).toBe(401);
    expect(r.json.detail).toMatch(/revoked/);
  });

  it("a token refused is not remembered: fixing the configuration accepts it (and a bad one stays refused)", async () => {
    const t = await token([A], "viewer", "not-yet-trusted");
    const other = { ...env, RUNNER_ISSUER: "someone-else" } as Env;
    await expect(verifyToken(other, t)).rejects.toMatchObject({ status: 401 });
    expect((await verifyToken(env, t)).sub).toBe("not-yet-trusted");
    // Accepted under one configuration, refused under another (the cache is emptied on a change).
    await expect(verifyToken(other, t)).rejects.toMatchObject({ status: 401 });
    const tampered = `${t.slice(0, -4)}AAAA`;
    await expect(verifyToken(env, tampered)).rejects.toMatchObject({ status: 401 });
  });
});
