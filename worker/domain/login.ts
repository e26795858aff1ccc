/**
 * POST /authentication/login: a service account's username and password for a Runner token.
 *
 * An unknown username and a wrong password answer the same 401 after the same work (a PBKDF2
 * derivation either way), and both count against the username's throttle (worker/login-throttle.do.ts),
 * which exists for every username, known or not. Nothing here logs the body.
 *
 * Every attempt that reaches the password check is in the audit log: a success or failure for a
 * known username in its account (subject: that service account), a failure for an unknown one
 * with no account, no subject and nothing of the username typed (it may be a password typed into
 * the wrong field). Either failure writes one row, so the two still cost the same.
 */
import { findServiceAccountByUsername, rehashServiceAccountPassword } from "../db/service-accounts";
import { signToken, TOKEN_VERSION_CLAIM } from "../lib/auth";
import { dummyVerifyPassword, hashPassword, needsRehash, verifyPassword } from "../lib/password";
import { ProblemError, tooManyRequests } from "../lib/problem";
import type { Origin } from "../schemas/audit";
import type { LoginAnswer, LoginInput } from "../schemas/login";
import { recordAudit } from "./audit";

export const DEFAULT_TOKEN_TTL_S = 3600;
const MAX_TOKEN_TTL_S = 7 * 24 * 3600;

/** TOKEN_TTL_SECONDS: whole seconds, 1 to a week; anything else is the default (an hour). */
export function tokenTtlSeconds(env: Env): number {
  const raw = String(env.TOKEN_TTL_SECONDS ?? "").trim();
  const n = /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
  return n >= 1 && n <= MAX_TOKEN_TTL_S ? n : DEFAULT_TOKEN_TTL_S;
}

/** One throttle per username, however it is spelt: usernames are unique whatever the case. */
export function loginThrottle(env: Env, username: string) {
  return env.LOGIN_THROTTLE.get(env.LOGIN_THROTTLE.idFromName(username.toLowerCase()));
}

// One answer for every wrong pair: which half was wrong is not said.
const refused = () =>
  new ProblemError({
    status: 401,
    title: "Unauthorized",
    detail: "The username or password is not right.",
    headers: { "WWW-Authenticate": `Bearer realm="runner"` },
  });

export async function login(env: Env, input: LoginInput, origin: Origin): Promise<LoginAnswer> {
  const throttle = loginThrottle(env, input.username);
  const gate = await throttle.attempt(Date.now());
  if (!gate.ok) throw tooManyRequests("Too many failed logins for this username; try again later.", gate.retryAfterMs / 1000);

  const row = await findServiceAccountByUsername(env.DB, input.username);
  const stored = row && { hash: row.password_hash, salt: row.password_salt, iterations: row.password_iterations };
  const ok = stored ? await verifyPassword(input.password, stored) : await dummyVerifyPassword(input.password);
  if (!row || !stored || !ok) {
    await recordAudit(
      env,
      row ? { ...origin, subject: row.id, kind: "serviceAccount" } : { ...origin, subject: "unknown", kind: "anonymous" },
      row
        ? { accountAlias: row.account_alias, action: "login.failed", resource: { type: "serviceAccount", id: row.alias }, details: { username: row.username } }
        : { accountAlias: null, action: "login.failed", resource: { type: "serviceAccount", id: null } },
    );
    throw refused();
  }
  await throttle.succeeded();
  await recordAudit(
    env,
    { ...origin, subject: row.id, kind: "serviceAccount" },
    {
      accountAlias: row.account_alias,
      action: "login.succeeded",
      resource: { type: "serviceAccount", id: row.alias },
      details: { username: row.username, role: row.role },
    },
  );

  if (needsRehash(stored)) await rehashServiceAccountPassword(env.DB, row, await hashPassword(input.password));

  const ttl = tokenTtlSeconds(env);
  const token = await signToken(env, { sub: row.id, accounts: [row.account_alias], role: row.role }, ttl, { [TOKEN_VERSION_CLAIM]: row.token_version });
  return {
    userName: row.username,
    accountAlias: row.account_alias,
    roles: [row.role],
    bearerToken: token,
    accessToken: token,
    tokenType: "Bearer",
    expiresIn: ttl,
  };
}
