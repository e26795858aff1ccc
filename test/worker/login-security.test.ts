import { createExecutionContext, env, runDurableObjectAlarm, waitOnExecutionContext } from "cloudflare:test";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { app } from "../../worker/app";
import { loginThrottle } from "../../worker/domain/login";
import { publicJwk } from "../../worker/lib/auth";
import { FIRST_LOCK_MS, MAX_FAILURES, MAX_LOCK_MS, WINDOW_MS } from "../../worker/domain/login-policy";
import { api } from "./helpers";
import { login, newServiceAccount, PASSWORD } from "./service-account-fixtures";

const A = "login-sec";

afterEach(() => vi.useRealTimers());

describe("POST /authentication/login (security)", () => {
  it("after 5 failures in a minute a username gets 429 with Retry-After, even with the right password", async () => {
    const sa = await newServiceAccount(A, { alias: "guessed" });
    for (let i = 0; i < MAX_FAILURES; i++) expect((await login(sa.username, `guess number ${i}`)).status).toBe(401);
    for (const password of ["guess number 6", PASSWORD]) {
      const r = await login(sa.username, password);
      expect(r.status).toBe(429);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
      const retry = Number(r.headers.get("retry-after"));
      expect(retry).toBeGreaterThan(0);
      expect(retry).toBeLessThanOrEqual(FIRST_LOCK_MS / 1000);
      expect(r.text).not.toContain(PASSWORD);
    }
    // Another spelling of the same username is the same throttle; other usernames are not held up.
    expect((await login(sa.username.toUpperCase(), PASSWORD)).status).toBe(429);
    const other = await newServiceAccount(A, { alias: "bystander" });
    expect((await login(other.username)).status).toBe(200);
  });

  it("an unknown username is throttled exactly like a known one (the throttle names no one)", async () => {
    const sa = await newServiceAccount(A, { alias: "known" });
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i <= MAX_FAILURES; i++) {
      known.push((await login(sa.username, "wrong wrong wrong")).status);
      unknown.push((await login("no-such-user-anywhere", "wrong wrong wrong")).status);
    }
    expect(known).toEqual([401, 401, 401, 401, 401, 429]);
    expect(unknown).toEqual(known);
  });

  it("a successful login resets the count", async () => {
    const sa = await newServiceAccount(A, { alias: "forgetful" });
    for (let i = 0; i < MAX_FAILURES - 1; i++) expect((await login(sa.username, "typo typo typo")).status).toBe(401);
    expect((await login(sa.username)).status).toBe(200);
    for (let i = 0; i < MAX_FAILURES; i++) expect((await login(sa.username, "typo typo typo")).status, `failure ${i + 1}`).toBe(401);
    expect((await login(sa.username)).status).toBe(429);
  });

  it("locks last 60 s, double while failures go on, stop at 15 min, and end; success clears the strikes", async () => {
    const t = loginThrottle(env, `throttle-unit-${crypto.randomUUID()}`);
    let now = 1_000_000_000_000;
    const fail5 = async () => {
      for (let i = 0; i < MAX_FAILURES; i++) expect(await t.attempt(now + i)).toEqual({ ok: true });
      now += MAX_FAILURES - 1;
    };
    const locks: number[] = [];
    for (let round = 0; round < 6; round++) {
      await fail5();
      const gate = await t.attempt(now);
      expect(gate.ok).toBe(false);
      const ms = (gate as { retryAfterMs: number }).retryAfterMs;
      locks.push(ms);
      now += ms; // the lock ends…
      expect(await t.attempt(now - 1)).toMatchObject({ ok: false });
    }
    expect(locks).toEqual([60_000, 120_000, 240_000, 480_000, MAX_LOCK_MS, MAX_LOCK_MS]);
    // Failures spread out over more than the window never lock.
    const spread = loginThrottle(env, `throttle-spread-${crypto.randomUUID()}`);
    for (let i = 0; i < 20; i++) expect(await spread.attempt(now + i * (WINDOW_MS / (MAX_FAILURES - 1)))).toEqual({ ok: true });
    // Success forgets the strikes: the next lock is the first again.
    await t.succeeded();
    await fail5();
    expect(await t.attempt(now)).toEqual({ ok: false, retryAfterMs: FIRST_LOCK_MS });
    // A long quiet spell forgets them too (and the object's storage is emptied by its alarm).
    now += FIRST_LOCK_MS + MAX_LOCK_MS + 1;
    await fail5();
    expect(await t.attempt(now)).toEqual({ ok: false, retryAfterMs: FIRST_LOCK_MS });
    expect(await runDurableObjectAlarm(t)).toBe(true);
    expect(await t.attempt(now)).toEqual({ ok: true });
  });

  it("a token stops working when it expires", async () => {
    const sa = await newServiceAccount(A, { alias: "mortal" });
    const r = await login(sa.username);
    expect((await api("GET", `/jobs/${A}`, { token: r.json.bearerToken })).status).toBe(200);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + r.json.expiresIn * 1000 + 31_000 }); // past exp and the 30 s clock tolerance
    const late = await api("GET", `/jobs/${A}`, { token: r.json.bearerToken });
    expect(late.status).toBe(401);
    expect(late.json.detail).toMatch(/expired/);
  });

  it("after a key rotation, tokens signed with the old key verify while it is listed in JWT_PREVIOUS_PUBLIC_KEYS", async () => {
    const sa = await newServiceAccount(A, { alias: "rotated" });
    const oldToken = (await login(sa.username)).json.bearerToken as string;
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const newKey: JWK = { ...(await exportJWK(privateKey)), kid: "k-new", alg: "ES256" };
    const oldPublic = publicJwk(JSON.parse(env.JWT_PRIVATE_KEY) as JWK);
    const rotated = { ...env, JWT_PRIVATE_KEY: JSON.stringify(newKey), JWT_PREVIOUS_PUBLIC_KEYS: JSON.stringify([oldPublic]) };
    const dropped = { ...env, JWT_PRIVATE_KEY: JSON.stringify(newKey), JWT_PREVIOUS_PUBLIC_KEYS: undefined };

    const call = async (e: Env, method: string, path: string, headers: Record<string, string> = {}, body?: unknown) => {
      const ctx = createExecutionContext();
      const res = await app.fetch(
        new Request(`http://runner.test${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }),
        e,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return { status: res.status, json: (await res.json().catch(() => undefined)) as any };
    };
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

    expect((await call(rotated, "GET", `/jobs/${A}`, bearer(oldToken))).status).toBe(200);
    const jwks = await call(rotated, "GET", "/.well-known/jwks.json");
    expect(jwks.json.keys.map((k: JWK) => k.kid)).toEqual(["k-new", oldPublic.kid]);
    // The login now signs with the new key, and its tokens verify too.
    const fresh = await call(rotated, "POST", "/authentication/login", { "content-type": "application/json" }, { username: sa.username, password: PASSWORD });
    expect(fresh.status).toBe(200);
    expect(JSON.parse(atob(fresh.json.bearerToken.split(".")[0].replace(/-/g, "+").replace(/_/g, "/"))).kid).toBe("k-new");
    expect((await call(rotated, "GET", `/jobs/${A}`, bearer(fresh.json.bearerToken))).status).toBe(200);
    // Once the old key is no longer listed, its tokens are refused.
    expect((await call(dropped, "GET", `/jobs/${A}`, bearer(oldToken))).status).toBe(401);
    expect((await call(dropped, "GET", `/jobs/${A}`, bearer(fresh.json.bearerToken))).status).toBe(200);
  });

  it("no password or hash is ever logged, whatever the outcome", async () => {
    const sa = await newServiceAccount(A, { alias: "logged" });
    const lines: string[] = [];
    const methods = ["log", "info", "warn", "error", "debug"] as const;
    const spies = methods.map((m) => vi.spyOn(console, m).mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" "))));
    try {
      await login(sa.username, "wrong but secret 1");
      await login("nobody-logged", "wrong but secret 2");
      await login(sa.username);
      await api("PUT", `/serviceAccounts/${A}/logged`, { body: { password: "new secret passphrase" } });
      await api("POST", "/authentication/login", { token: null, body: { username: sa.username, password: "x".repeat(2000) } });
    } finally {
      for (const s of spies) s.mockRestore();
    }
    const row = await env.DB.prepare("SELECT password_hash, password_salt FROM service_accounts WHERE id = ?").bind(sa.id).first<Record<string, string>>();
    for (const secret of ["wrong but secret", PASSWORD, "new secret passphrase", "x".repeat(50), row!.password_hash, row!.password_salt]) {
      for (const line of lines) expect(line).not.toContain(secret);
    }
  });
});
