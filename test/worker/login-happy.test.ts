import { env } from "cloudflare:test";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { hashPassword, PBKDF2_ITERATIONS } from "../../worker/lib/password";
import { login as loginDomain, tokenTtlSeconds } from "../../worker/domain/login";
import { api } from "./helpers";
import { login, newServiceAccount, PASSWORD } from "./service-account-fixtures";

const A = "login-ok";

describe("POST /authentication/login (happy)", () => {
  it("answers the original's members plus accessToken, tokenType and expiresIn; the token works at once", async () => {
    const sa = await newServiceAccount(A, { alias: "ci", role: "user" });
    const r = await login(sa.username);
    expect(r.status).toBe(200);
    expect(r.headers.get("cache-control")).toBe("no-store");
    expect(r.json).toEqual({
      userName: sa.username,
      accountAlias: A,
      roles: ["user"],
      bearerToken: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
      accessToken: r.json.bearerToken,
      tokenType: "Bearer",
      expiresIn: 3600,
    });
    expect((await api("GET", `/jobs/${A}`, { token: r.json.bearerToken })).status).toBe(200);
  });

  it("signs an ES256 JWT with the key id, verifiable with /.well-known/jwks.json alone", async () => {
    const sa = await newServiceAccount(A, { alias: "signed", role: "viewer" });
    const t = (await login(sa.username)).json.bearerToken as string;
    const jwks = (await api("GET", "/.well-known/jwks.json", { token: null })).json as JSONWebKeySet;
    const { payload, protectedHeader } = await jwtVerify(t, createLocalJWKSet(jwks), { issuer: "runner", algorithms: ["ES256"] });
    expect(protectedHeader).toMatchObject({ alg: "ES256", kid: (JSON.parse(env.JWT_PRIVATE_KEY) as JWK).kid });
    expect(payload).toMatchObject({ sub: sa.id, accounts: [A], role: "viewer", tv: 1, iss: "runner" });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(decodeProtectedHeader(t).kid).toBeTruthy();
    expect(JSON.stringify(payload)).not.toContain(PASSWORD);
  });

  it("takes the username in any case", async () => {
    const sa = await newServiceAccount(A, { alias: "cased", username: "Mixed.Case-Bot" });
    for (const u of ["Mixed.Case-Bot", "mixed.case-bot", "MIXED.CASE-BOT"]) {
      const r = await login(u);
      expect(r.status, u).toBe(200);
      expect(r.json.userName).toBe(sa.username); // as stored
    }
  });

  it("the lifetime comes from TOKEN_TTL_SECONDS (default an hour)", async () => {
    expect(env.TOKEN_TTL_SECONDS).toBe("3600");
    expect(tokenTtlSeconds({ ...env, TOKEN_TTL_SECONDS: "120" })).toBe(120);
    for (const bad of ["", "0", "-5", "1.5", "1e3", "999999999", "soon"]) expect(tokenTtlSeconds({ ...env, TOKEN_TTL_SECONDS: bad }), bad).toBe(3600);
    const sa = await newServiceAccount(A, { alias: "short" });
    const answer = await loginDomain({ ...env, TOKEN_TTL_SECONDS: "120" }, { username: sa.username, password: PASSWORD }, { ip: null, requestId: null });
    expect(answer.expiresIn).toBe(120);
    const claims = decodeJwt(answer.bearerToken);
    expect(claims.exp! - claims.iat!).toBe(120);
  });

  it("a hash made with fewer iterations is raised to the current count at the next login, and tokens stay good", async () => {
    const sa = await newServiceAccount(A, { alias: "legacy" });
    const weak = await hashPassword(PASSWORD, 1_000);
    await env.DB.prepare("UPDATE service_accounts SET password_hash = ?, password_salt = ?, password_iterations = ? WHERE id = ?")
      .bind(weak.hash, weak.salt, weak.iterations, sa.id)
      .run();
    const first = await login(sa.username);
    expect(first.status).toBe(200);
    const row = await env.DB.prepare("SELECT * FROM service_accounts WHERE id = ?").bind(sa.id).first<Record<string, unknown>>();
    expect(row).toMatchObject({ password_iterations: PBKDF2_ITERATIONS, token_version: 1 });
    expect(row!.password_hash).not.toBe(weak.hash);
    expect((await login(sa.username)).status).toBe(200);
    expect((await api("GET", `/jobs/${A}`, { token: first.json.bearerToken })).status).toBe(200);
  });
});
