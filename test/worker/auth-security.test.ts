import { env } from "cloudflare:test";
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../../worker/app";
import { verifyToken } from "../../worker/lib/auth";
import { ProblemError } from "../../worker/lib/problem";
import { api, token } from "./helpers";
import { playbookJob } from "./jobs-fixtures";

const A = "acct-a";
const B = "acct-b";
const ownJwk = JSON.parse(env.JWT_PRIVATE_KEY) as JWK;

/** Signs arbitrary claims; by default with Runner's own key and issuer, valid for an hour. */
async function sign(
  claims: JWTPayload,
  opts: { key?: CryptoKey; kid?: string; alg?: string; iss?: string | null; exp?: number | null; nbf?: number; iat?: number } = {},
) {
  const key = opts.key ?? ((await importJWK(ownJwk, "ES256")) as CryptoKey);
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ accounts: [A], role: "admin", ...claims })
    .setProtectedHeader({ alg: opts.alg ?? "ES256", kid: opts.kid ?? ownJwk.kid })
    .setSubject("someone")
    .setIssuedAt(opts.iat ?? now);
  if (opts.iss !== null) jwt = jwt.setIssuer(opts.iss ?? "runner");
  if (opts.exp !== null) jwt = jwt.setExpirationTime(opts.exp ?? now + 3600);
  if (opts.nbf !== undefined) jwt = jwt.setNotBefore(opts.nbf);
  return jwt.sign(key);
}

const b64url = (s: string) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

let jobA: string; // a job in account A

beforeAll(async () => {
  const r = await api("POST", `/jobs/${A}`, { token: await token([A], "user"), body: playbookJob() });
  jobA = r.json.id;
});

const routes = (): [string, string, unknown?][] => [
  ["GET", `/jobs/${A}`],
  ["POST", `/jobs/${A}`, playbookJob()],
  ["GET", `/jobs/${A}/${jobA}`],
  ["PUT", `/jobs/${A}/${jobA}`, playbookJob({ name: "changed" })],
  ["DELETE", `/jobs/${A}/${jobA}`],
];

describe("authentication (security)", () => {
  const badTokens: [string, () => Promise<string | null>, RegExp][] = [
    ["no token", async () => null, /required/],
    ["malformed", async () => "not-a-jwt", /malformed/],
    ["three garbage parts", async () => "aaa.bbb.ccc", /malformed/],
    ["signed by another key (same kid)", async () => sign({}, { key: (await generateKeyPair("ES256")).privateKey as CryptoKey }), /signature/],
    ["expired", async () => sign({}, { exp: Math.floor(Date.now() / 1000) - 3600 }), /expired/],
    ["not valid yet", async () => sign({}, { nbf: Math.floor(Date.now() / 1000) + 3600 }), /not valid yet/],
    ["issued in the future", async () => sign({}, { iat: Math.floor(Date.now() / 1000) + 3600, exp: Math.floor(Date.now() / 1000) + 7200 }), /not valid yet/],
    ["wrong issuer", async () => sign({}, { iss: "someone-else" }), /issuer/],
    ["no issuer", async () => sign({}, { iss: null }), /issuer/],
    ["no expiry", async () => sign({}, { exp: null }), /expiry/],
    ["unknown role", async () => sign({ role: "root" }), /role/],
    ["no accounts claim", async () => sign({ accounts: undefined }), /accounts/],
    [
      "alg none",
      async () =>
        `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify({ iss: "runner", sub: "x", accounts: "*", role: "admin", exp: 9999999999 }))}.`,
      /.+/,
    ],
    [
      "HS256 with the public key as secret (algorithm confusion)",
      async () => {
        const { d: _d, ...pub } = ownJwk;
        const secret = new TextEncoder().encode(JSON.stringify(pub));
        return new SignJWT({ accounts: "*", role: "admin" })
          .setProtectedHeader({ alg: "HS256", kid: ownJwk.kid })
          .setIssuer("runner")
          .setSubject("x")
          .setExpirationTime("1h")
          .sign(secret);
      },
      /signature|verified/,
    ],
  ];

  it.each(badTokens)("%s → 401 with a Bearer challenge on every jobs route", async (_label, make, detail) => {
    const t = await make();
    for (const [method, path, body] of routes()) {
      const r = await api(method, path, { token: t, body });
      expect(r.status, `${method} ${path}`).toBe(401);
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer realm="runner"/);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
      expect(r.json.detail).toMatch(detail);
    }
    // Nothing changed: the job is still there, unrenamed.
    const still = await api("GET", `/jobs/${A}/${jobA}`, { token: await token([A], "viewer") });
    expect(still.json.name).toBe("deploy");
  });

  it("answers other authorization schemes and a missing token with the bare challenge vs invalid_token", async () => {
    const none = await api("GET", `/jobs/${A}`, { token: null });
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="runner"');
    const basic = await api("GET", `/jobs/${A}`, { token: null, headers: { authorization: "Basic dXNlcjpwYXNz" } });
    expect(basic.status).toBe(401);
    expect(basic.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("401 comes before any input validation", async () => {
    const r = await api("POST", `/jobs/${A}`, { token: null, body: "{not json" });
    expect(r.status).toBe(401);
  });
});

describe("authorization (security)", () => {
  it("another account's job is a 404 exactly like a missing one", async () => {
    const sansRequestId = (text: string) => text.replace(/"requestId":"[^"]*"/, "");
    const tb = await token([B], "admin");
    const missing = await api("GET", `/jobs/${B}/does-not-exist`, { token: tb });
    expect(missing.status).toBe(404);
    for (const [method, path, body] of routes()) {
      const r = await api(method, path, { token: tb, body });
      expect(r.status, `${method} ${path}`).toBe(404);
      // The same bytes but for the request id, which differs by nature.
      expect(sansRequestId(r.text)).toBe(sansRequestId(missing.text));
    }
    // …also with an invalid body: a foreign caller learns nothing from validation.
    const bad = await api("POST", `/jobs/${A}`, { token: tb, body: { hosts: 5 } });
    expect(bad.status).toBe(404);
    expect((await api("GET", `/jobs/${A}/${jobA}`, { token: await token([A], "viewer") })).json.name).toBe("deploy");
  });

  it("a viewer reads but may not write (403)", async () => {
    const tv = await token([A], "viewer");
    expect((await api("GET", `/jobs/${A}`, { token: tv })).status).toBe(200);
    expect((await api("GET", `/jobs/${A}/${jobA}`, { token: tv })).status).toBe(200);
    for (const [method, path, body] of routes().filter(([m]) => m !== "GET")) {
      const r = await api(method, path, { token: tv, body });
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.json.detail).toContain("viewer");
    }
    expect((await api("GET", `/jobs/${A}/${jobA}`, { token: tv })).json.name).toBe("deploy");
  });

  it("a user and an admin of the account write", async () => {
    for (const role of ["user", "admin"] as const) {
      const t = await token([A], role);
      const r = await api("POST", `/jobs/${A}`, { token: t, body: playbookJob() });
      expect(r.status).toBe(200);
      expect((await api("DELETE", `/jobs/${A}/${r.json.id}`, { token: t })).status).toBe(204);
    }
  });

  it("an operator (accounts: *) reads and writes any account", async () => {
    const op = await token("*", "user");
    for (const alias of [A, "any-other-account"]) {
      const c = await api("POST", `/jobs/${alias}`, { token: op, body: playbookJob() });
      expect(c.status).toBe(200);
      expect((await api("GET", `/jobs/${alias}/${c.json.id}`, { token: op })).status).toBe(200);
      expect((await api("PUT", `/jobs/${alias}/${c.json.id}`, { token: op, body: playbookJob({ name: "op" }) })).json.name).toBe("op");
      expect((await api("DELETE", `/jobs/${alias}/${c.json.id}`, { token: op })).status).toBe(204);
    }
    expect((await api("GET", `/jobs/${A}/${jobA}`, { token: await token("*", "viewer") })).status).toBe(200);
    expect((await api("DELETE", `/jobs/${A}/${jobA}`, { token: await token("*", "viewer") })).status).toBe(403);
  });

  it("accepts an accounts claim given as a space-separated string", async () => {
    const t = await sign({ accounts: `${B} ${A}`, role: "viewer" });
    expect((await api("GET", `/jobs/${A}/${jobA}`, { token: t })).status).toBe(200);
  });
});

describe("external OIDC issuer (security)", () => {
  const ISSUER = "https://idp.example.test/";
  const AUDIENCE = "runner-api";
  let idpKey: CryptoKey;
  let oidcEnv: Env;

  beforeAll(async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    idpKey = pair.privateKey as CryptoKey;
    const pub = { ...(await exportJWK(pair.publicKey)), kid: "idp-1", alg: "RS256", use: "sig" };
    oidcEnv = {
      ...env,
      OIDC_ISSUER: ISSUER,
      OIDC_AUDIENCE: AUDIENCE,
      OIDC_ACCOUNTS_CLAIM: "https://runner/accounts",
      OIDC_JWKS: JSON.stringify({ keys: [pub] }),
      OIDC_JWKS_URL: "",
    };
  });

  const idpToken = (claims: JWTPayload = {}, opts: { aud?: string; key?: CryptoKey; exp?: string; iss?: string } = {}) =>
    new SignJWT({ "https://runner/accounts": [A], role: "user", ...claims })
      .setProtectedHeader({ alg: "RS256", kid: "idp-1" })
      .setIssuer(opts.iss ?? ISSUER)
      .setAudience(opts.aud ?? AUDIENCE)
      .setSubject("alice@example.test")
      .setIssuedAt()
      .setExpirationTime(opts.exp ?? "10m")
      .sign(opts.key ?? idpKey);

  const rejects = async (e: Env, t: string, detail: RegExp) => {
    const err = await verifyToken(e, t).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ProblemError);
    expect((err as ProblemError).status).toBe(401);
    expect((err as ProblemError).detail).toMatch(detail);
  };

  it("accepts the issuer's token with the configured audience and accounts claim", async () => {
    expect(await verifyToken(oidcEnv, await idpToken())).toEqual({ sub: "alice@example.test", accounts: [A], role: "user", kind: "user" });
    const res = await app.request(`/jobs/${A}/${jobA}`, { headers: { authorization: `Bearer ${await idpToken()}` } }, oidcEnv);
    expect(res.status).toBe(200);
    const foreign = await app.request(`/jobs/${B}`, { headers: { authorization: `Bearer ${await idpToken()}` } }, oidcEnv);
    expect(foreign.status).toBe(404);
  });

  it("rejects a wrong audience, another signer, an expired token and a missing accounts claim", async () => {
    await rejects(oidcEnv, await idpToken({}, { aud: "some-other-app" }), /audience/);
    await rejects(oidcEnv, await idpToken({}, { key: (await generateKeyPair("RS256")).privateKey as CryptoKey }), /signature/);
    await rejects(oidcEnv, await idpToken({}, { exp: "-5m" }), /expired/);
    await rejects(oidcEnv, await idpToken({ "https://runner/accounts": undefined }), /accounts/);
    await rejects(oidcEnv, await idpToken({}, { iss: "https://evil.example.test/" }), /issuer/);
  });

  it("trusts no external token when OIDC is not (fully) configured", async () => {
    const t = await idpToken();
    await rejects(env, t, /issuer/);
    await rejects({ ...oidcEnv, OIDC_AUDIENCE: "" }, t, /issuer/);
    await rejects({ ...oidcEnv, OIDC_JWKS: "" }, t, /issuer/);
  });

  it("does not let an external token pass as Runner's own", async () => {
    // Signed by the IdP but claiming Runner's issuer: checked against Runner's keys, so rejected.
    await rejects(oidcEnv, await idpToken({}, { iss: "runner" }), /signature|verified/);
  });
});
