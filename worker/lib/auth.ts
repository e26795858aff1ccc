import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, importJWK, jwtVerify, SignJWT, type JSONWebKeySet, type JWK, type JWTPayload } from "jose";
import type { MiddlewareHandler } from "hono";
import { serviceAccountTokenVersion } from "../db/service-accounts";
import { agentIdentity, type AgentIdentity } from "../domain/agent-identity";
import { sha256 } from "./hash";
import { TokenCache } from "./token-cache";
import { forbidden, notFound, unauthorized, badRequest, ProblemError } from "./problem";
import { ROLES, roleAtLeast, roleNeeded, type Action, type Family, type Role } from "./roles";

export type { Role } from "./roles";
export interface Principal {
  sub: string;
  /** Aliases this principal may act on, or "*" for an operator. */
  accounts: string[] | "*";
  role: Role;
  /**
   * Which kind of token it came from, for the audit log and the request log: a service account's
   * login token, or a person's (a development or OIDC token). An operator is any token of
   * accounts "*" (see `principalKind`). Set by `verifyToken`; absent on principals built in code.
   */
  kind?: "user" | "serviceAccount";
}
export type AuthVars = { principal: Principal };

export const ALIAS_RE = /^[A-Za-z0-9_-]{2,32}$/;

/** The public half of a JWK (drops private members). */
export function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return { ...pub, use: "sig", alg: jwk.alg ?? "ES256" };
}

export function ownJwks(env: Env): JSONWebKeySet {
  const keys: JWK[] = [];
  if (env.JWT_PRIVATE_KEY) keys.push(publicJwk(JSON.parse(env.JWT_PRIVATE_KEY) as JWK));
  if (env.JWT_PREVIOUS_PUBLIC_KEYS) keys.push(...(JSON.parse(env.JWT_PREVIOUS_PUBLIC_KEYS) as JWK[]).map(publicJwk));
  return { keys };
}

/**
 * The claim that marks a token the login issued: the service account's token version, checked
 * against D1 on every request (see `verifyToken`). Its `sub` is the service account's id.
 */
export const TOKEN_VERSION_CLAIM = "tv";

/** Signs a Runner token (used by login and by tests/scripts through the same code path). */
export async function signToken(env: Env, p: Principal, ttlSeconds = 3600, extraClaims: JWTPayload = {}): Promise<string> {
  const jwk = JSON.parse(env.JWT_PRIVATE_KEY) as JWK;
  const key = await importJWK(jwk, "ES256");
  return new SignJWT({ ...extraClaims, accounts: p.accounts, role: p.role })
    .setProtectedHeader({ alg: "ES256", kid: jwk.kid })
    .setSubject(p.sub)
    .setIssuer(env.RUNNER_ISSUER || "runner")
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(key);
}

// Remote JWKS sets cache keys per isolate; keep one per URL (the URL is configuration: one, or a
// few around a change; the oldest is dropped first).
const remoteSets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
const MAX_REMOTE_SETS = 4;

/** Test-only introspection (test/worker/memory-bounded.test.ts): entries of the remote JWKS cache. */
export const remoteJwksCacheSize = () => remoteSets.size;

function principalFrom(payload: JWTPayload, accountsClaim: string): Principal {
  // jose checks `nbf`, but an `iat` in the future only with maxTokenAge (which would require `iat`):
  // a token issued later than now is not valid yet either.
  if (typeof payload.iat === "number" && payload.iat > Date.now() / 1000 + CLOCK_TOLERANCE_S) throw unauthorized("The token is not valid yet.");
  const sub = typeof payload.sub === "string" && payload.sub ? payload.sub : null;
  if (!sub) throw unauthorized("The token has no subject.");
  const raw = payload[accountsClaim];
  let accounts: string[] | "*";
  if (raw === "*") accounts = "*";
  else if (Array.isArray(raw) && raw.every((a) => typeof a === "string")) accounts = raw.includes("*") ? "*" : (raw as string[]);
  else if (typeof raw === "string" && raw) accounts = raw.split(/[ ,]+/).filter(Boolean);
  else throw unauthorized(`The token has no '${accountsClaim}' claim.`);
  const role = (payload.role ?? "viewer") as Role;
  if (!ROLES.includes(role)) throw unauthorized("The token's role is not one of admin, user, viewer.");
  return { sub, accounts, role, kind: "user" };
}

// Asymmetric algorithms only: an external issuer's JWKS never holds a shared secret we would accept.
const OIDC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
const CLOCK_TOLERANCE_S = 30;

// Verified tokens (worker/lib/token-cache.ts): the signature is checked once per token and minute.
const verified = new TokenCache<Principal>();

/** Test-only introspection (test/worker/memory-bounded.test.ts): entries of the verified-token cache. */
export const tokenCacheSize = () => verified.size;

/** What decides whether a token is trusted: a change of any of it empties the verified-token cache. */
const trustConfig = (env: Env) =>
  [
    env.RUNNER_ISSUER,
    env.JWT_PRIVATE_KEY,
    env.JWT_PREVIOUS_PUBLIC_KEYS,
    env.OIDC_ISSUER,
    env.OIDC_AUDIENCE,
    env.OIDC_JWKS,
    env.OIDC_JWKS_URL,
    env.OIDC_ACCOUNTS_CLAIM,
  ].join("\n");

// The own keys, imported once per configuration (jose keeps the imported keys inside the set).
let ownSet: { config: string; set: ReturnType<typeof createLocalJWKSet> } | null = null;
function ownKeySet(env: Env) {
  const config = `${env.JWT_PRIVATE_KEY}\n${env.JWT_PREVIOUS_PUBLIC_KEYS}`;
  if (ownSet?.config !== config) ownSet = { config, set: createLocalJWKSet(ownJwks(env)) };
  return ownSet.set;
}

export async function verifyToken(env: Env, token: string): Promise<Principal> {
  const config = trustConfig(env);
  const key = await verified.keyOf(token);
  const hit = verified.get(config, key);
  if (hit) return accepted(env, hit.principal, hit.tokenVersion);
  const { principal, tokenVersion, exp } = await verifySignature(env, token);
  const answer = await accepted(env, principal, tokenVersion);
  // Only what passed every check is remembered; `exp` is required, so it bounds the entry.
  verified.set(config, key, { principal, tokenVersion }, exp);
  return answer;
}

/** A verified principal, once a service account's token version still matches (checked on every use). */
async function accepted(env: Env, principal: Principal, tokenVersion: unknown): Promise<Principal> {
  if (tokenVersion === undefined) return { ...principal };
  await checkTokenVersion(env, principal.sub, tokenVersion);
  return { ...principal, kind: "serviceAccount" };
}

async function verifySignature(env: Env, token: string): Promise<{ principal: Principal; tokenVersion?: unknown; exp: number }> {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(token);
  } catch {
    throw unauthorized("The bearer token is malformed.");
  }
  const ownIssuer = env.RUNNER_ISSUER || "runner";
  try {
    if (claims.iss === ownIssuer) {
      const { payload } = await jwtVerify(token, ownKeySet(env), {
        issuer: ownIssuer,
        algorithms: ["ES256"],
        requiredClaims: ["exp"],
        clockTolerance: CLOCK_TOLERANCE_S,
      });
      const principal = principalFrom(payload, "accounts");
      // Only login tokens carry the claim, so every other token costs no storage read.
      const tokenVersion = TOKEN_VERSION_CLAIM in payload ? (payload[TOKEN_VERSION_CLAIM] ?? null) : undefined;
      return { principal, tokenVersion, exp: payload.exp! };
    }
    // External tokens need an audience: without one, any token the issuer minted for any other
    // application would be accepted here (fail closed on a half-configured issuer).
    if (env.OIDC_ISSUER && claims.iss === env.OIDC_ISSUER && env.OIDC_AUDIENCE && (env.OIDC_JWKS || env.OIDC_JWKS_URL)) {
      let keys;
      if (env.OIDC_JWKS) keys = createLocalJWKSet(JSON.parse(env.OIDC_JWKS) as JSONWebKeySet);
      else {
        keys = remoteSets.get(env.OIDC_JWKS_URL);
        if (!keys) {
          remoteSets.set(env.OIDC_JWKS_URL, (keys = createRemoteJWKSet(new URL(env.OIDC_JWKS_URL))));
          while (remoteSets.size > MAX_REMOTE_SETS) remoteSets.delete(remoteSets.keys().next().value!);
        }
      }
      const { payload } = await jwtVerify(token, keys, {
        issuer: env.OIDC_ISSUER,
        audience: env.OIDC_AUDIENCE,
        algorithms: OIDC_ALGORITHMS,
        requiredClaims: ["exp"],
        clockTolerance: CLOCK_TOLERANCE_S,
      });
      return { principal: principalFrom(payload, env.OIDC_ACCOUNTS_CLAIM || "accounts"), exp: payload.exp! };
    }
  } catch (e) {
    if (e instanceof ProblemError) throw e;
    const { code = "", claim = "" } = e as { code?: string; claim?: string };
    if (code === "ERR_JWT_EXPIRED") throw unauthorized("The token has expired.");
    if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED") {
      if (claim === "nbf" || claim === "iat") throw unauthorized("The token is not valid yet.");
      if (claim === "aud") throw unauthorized("The token names the wrong audience.");
      if (claim === "exp") throw unauthorized("The token has no expiry.");
      throw unauthorized(`The token's '${claim.replace(/[^\w-]/g, "").slice(0, 40)}' claim is not acceptable.`);
    }
    throw unauthorized("The token's signature or claims could not be verified.");
  }
  throw unauthorized("The token's issuer is not trusted.");
}

/**
 * A service account's token is good while the account exists at the version the token names:
 * deleting it, or changing its password, username or role (which bumps the version), refuses the
 * tokens issued before at once rather than at their expiry.
 */
async function checkTokenVersion(env: Env, serviceAccountId: string, version: unknown): Promise<void> {
  const current = await serviceAccountTokenVersion(env.DB, serviceAccountId);
  if (current === null || current !== version) throw unauthorized("The token has been revoked.");
}

/** The token of an `Authorization: Bearer <token>` header; null for anything else. */
export function bearerToken(header: string | undefined): string | null {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1] ?? null;
}

/** Requires a valid bearer token; the principal lands in `c.var.principal`. */
export const requireAuth: MiddlewareHandler<{ Bindings: Env; Variables: AuthVars }> = async (c, next) => {
  const header = c.req.header("authorization");
  const token = bearerToken(header);
  if (!token) throw unauthorized("A bearer token is required.", !header);
  c.set("principal", await verifyToken(c.env, token));
  await next();
};

/**
 * The authorization rule for every account-scoped route: a bad alias is 400, a foreign account
 * is 404 (indistinguishable from a missing resource), a role weaker than `need` is 403.
 */
export function authorize(p: Principal, alias: string, need: Role): void {
  if (!ALIAS_RE.test(alias)) throw badRequest([{ field: "accountAlias", message: "must be 2-32 characters of A-Z, a-z, 0-9, _ or -" }]);
  if (p.accounts !== "*" && !p.accounts.includes(alias)) throw notFound();
  if (!roleAtLeast(p.role, need)) throw forbidden(`The role '${p.role}' may not do this; it needs '${need}'.`);
}

/**
 * Route middleware for what belongs to no account (the shared pool): only operators (accounts
 * "*") may see it; to anyone else it does not exist (404), like another account's resources. The
 * role is the table's for (family, action), as on the account routes.
 */
export function requireOperator(family: Family, action: Action): MiddlewareHandler<{ Bindings: Env; Variables: AuthVars }> {
  const need = roleNeeded(family, action);
  return async (c, next) => {
    await requireAuth(c, async () => {
      const p = c.var.principal;
      if (p.accounts !== "*") throw notFound();
      if (!roleAtLeast(p.role, need)) throw forbidden(`The role '${p.role}' may not do this; it needs '${need}'.`);
      await next();
    });
  };
}

/**
 * Route middleware: a valid token, then `authorize` for the route's `{alias}` parameter with the
 * role that worker/lib/roles.ts's table names for (family, action). It runs before input
 * validation, so a caller who may not act on the account learns nothing from a 400.
 */
export function requireAccess(family: Family, action: Action): MiddlewareHandler<{ Bindings: Env; Variables: AuthVars }> {
  const need = roleNeeded(family, action);
  return async (c, next) => {
    await requireAuth(c, async () => {
      authorize(c.var.principal, c.req.param("alias") ?? "", need);
      await next();
    });
  };
}

// ---- agents (docs/agent-protocol.md) ----------------------------------------------------------

export type AgentEnv = { Bindings: Env; Variables: AuthVars & { agent: AgentIdentity } };

const CREDENTIAL_RE = /^rac_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/;

/**
 * The agent a `rac_…` credential belongs to; unknown, malformed or revoked → 401. Its `Agent`
 * object answers (the credential's hash only crosses to it) and records the sighting.
 */
export async function authenticateAgent(env: Env, credential: string): Promise<AgentIdentity> {
  const m = CREDENTIAL_RE.exec(credential);
  if (!m) throw unauthorized("The agent credential is malformed (expected rac_<agentId>_<secret>).");
  const answer = await agentIdentity(env, m[1]!).authenticate(m[1]!, await sha256(credential));
  if (answer.ok) return answer.agent;
  throw unauthorized(answer.reason === "revoked" ? "This agent was revoked." : "The agent credential is not valid.");
}

/** `/agent/*` middleware: Bearer rac_… → `c.var.agent` (the object records the sighting). */
export const requireAgent: MiddlewareHandler<AgentEnv> = async (c, next) => {
  const header = c.req.header("authorization");
  const credential = bearerToken(header);
  if (!credential) throw unauthorized("An agent credential (Bearer rac_...) is required.", !header);
  c.set("agent", await authenticateAgent(c.env, credential));
  await next();
};
