/**
 * Service accounts: what schedules fire as, and who logs in (worker/domain/login.ts). A service
 * account acts on its own account only, with its role there. Passwords are kept only as PBKDF2
 * hashes and never answered.
 */
import {
  deleteServiceAccount,
  getServiceAccount,
  insertServiceAccount,
  listServiceAccounts,
  updateServiceAccount as updateRow,
  type Clash,
  type ServiceAccountRow,
} from "../db/service-accounts";
import { newId } from "../lib/ids";
import { hashPassword } from "../lib/password";
import { badRequest, conflict, notFound } from "../lib/problem";
import type { Actor } from "../schemas/audit";
import type { PageParams } from "../schemas/common";
import type { ServiceAccount, ServiceAccountInput, ServiceAccountList, ServiceAccountUpdate } from "../schemas/service-account";
import { auditStatement } from "./audit";

/** The answer: everything but the password hash, salt and token version. */
export function serviceAccountView(r: ServiceAccountRow): ServiceAccount {
  return {
    id: r.id,
    accountAlias: r.account_alias,
    alias: r.alias,
    username: r.username,
    role: r.role,
    createdTime: r.created_time,
    lastUpdatedTime: r.last_updated_time,
  };
}

function clashProblem(clash: Clash) {
  return clash === "alias"
    ? conflict("This account already has a service account with that alias.", [{ field: "alias", message: "is taken in this account" }])
    : conflict("That username is taken; usernames are unique across the service.", [{ field: "username", message: "is taken" }]);
}

const missing = () => notFound("No such service account.");

/**
 * What the audit log keeps of a service account: its username and role, and for a change the
 * names of what changed ("password" says it was set, never what to). Resource id: the alias, as
 * in its path.
 */
function serviceAccountAudit(
  action: "serviceAccount.created" | "serviceAccount.changed" | "serviceAccount.deleted",
  accountAlias: string,
  alias: string,
  details: Record<string, string | string[]> = {},
) {
  return { accountAlias, action, resource: { type: "serviceAccount", id: alias }, details } as const;
}

export async function createServiceAccount(env: Env, accountAlias: string, input: ServiceAccountInput, actor: Actor): Promise<ServiceAccount> {
  const now = Date.now();
  const hash = await hashPassword(input.password);
  const row: ServiceAccountRow = {
    id: newId(now),
    account_alias: accountAlias,
    alias: input.alias,
    username: input.username,
    role: input.role,
    password_hash: hash.hash,
    password_salt: hash.salt,
    password_iterations: hash.iterations,
    token_version: 1,
    created_time: now,
    last_updated_time: now,
  };
  const audit = auditStatement(
    env.DB,
    actor,
    serviceAccountAudit("serviceAccount.created", accountAlias, row.alias, { username: row.username, role: row.role }),
  );
  const clash = await insertServiceAccount(env.DB, row, audit);
  if (clash) throw clashProblem(clash);
  return serviceAccountView(row);
}

export async function listServiceAccountPage(env: Env, accountAlias: string, p: PageParams): Promise<ServiceAccountList> {
  const page = await listServiceAccounts(env.DB, accountAlias, p);
  const results = page.results.map(serviceAccountView);
  return { accounts: results.map((a) => a.alias), totalSize: page.totalSize, page: page.page, size: page.size, results };
}

export async function readServiceAccount(env: Env, accountAlias: string, alias: string): Promise<ServiceAccount> {
  const row = await getServiceAccount(env.DB, accountAlias, alias);
  if (!row) throw missing();
  return serviceAccountView(row);
}

/**
 * Changes what the body names and keeps the rest. A new password, username or role bumps the token
 * version, so every token issued before stops working at once (the role a token carries must not
 * outlive a demotion, nor a login outlive a password reset).
 */
export async function updateServiceAccount(env: Env, accountAlias: string, alias: string, input: ServiceAccountUpdate, actor: Actor): Promise<ServiceAccount> {
  const row = await getServiceAccount(env.DB, accountAlias, alias);
  if (!row) throw missing();
  if (input.alias !== undefined && input.alias !== alias) throw badRequest([{ field: "alias", message: "cannot change: it must be the alias in the path" }]);
  const username = input.username ?? row.username;
  if (input.password !== undefined && input.password.toLowerCase() === username.toLowerCase()) {
    throw badRequest([{ field: "password", message: "must not be the username" }]);
  }
  const next: ServiceAccountRow = { ...row, username, role: input.role ?? row.role };
  if (input.password !== undefined) {
    const hash = await hashPassword(input.password);
    Object.assign(next, { password_hash: hash.hash, password_salt: hash.salt, password_iterations: hash.iterations });
  }
  const changed = input.password !== undefined || next.username !== row.username || next.role !== row.role;
  if (!changed) return serviceAccountView(row);
  next.token_version = row.token_version + 1;
  next.last_updated_time = Math.max(Date.now(), row.last_updated_time);
  const what = [
    ...(next.username !== row.username ? ["username"] : []),
    ...(input.password !== undefined ? ["password"] : []),
    ...(next.role !== row.role ? ["role"] : []),
  ];
  const audit = auditStatement(
    env.DB,
    actor,
    serviceAccountAudit("serviceAccount.changed", accountAlias, alias, { changed: what, username: next.username, role: next.role }),
    { ifChanged: true },
  );
  const outcome = await updateRow(env.DB, next, row.token_version, audit);
  if (outcome === "gone") {
    if (!(await getServiceAccount(env.DB, accountAlias, alias))) throw missing();
    throw conflict("The service account was changed by another request while this one updated it; try again.");
  }
  if (outcome) throw clashProblem(outcome);
  return serviceAccountView(next);
}

export async function removeServiceAccount(env: Env, accountAlias: string, alias: string, actor: Actor): Promise<void> {
  const audit = auditStatement(env.DB, actor, serviceAccountAudit("serviceAccount.deleted", accountAlias, alias), { ifChanged: true });
  if (!(await deleteServiceAccount(env.DB, accountAlias, alias, audit))) throw missing();
}
