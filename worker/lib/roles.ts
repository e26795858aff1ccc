/**
 * Who may do what: the one table every account-scoped route's middleware reads
 * (`requireAccess(family, action)`), shown in the README and walked route by route by
 * test/worker/roles-security.test.ts. A role may do whatever a weaker one may.
 *
 * The README's "Roles": admin has everything in its account (service
 * accounts, agents and their registration tokens, webhook secrets, the audit log);
 * user works with jobs, executions and schedules; viewer reads. The inventory is what
 * dynamic-inventory jobs run on, so a user who may define a job's hosts may define it too.
 * Service accounts are admin-only even to read: a username is half of a login. So is the webhook
 * secret: whoever holds it can forge deliveries. An execution's deliveries are the executions'.
 */

export type Role = "admin" | "user" | "viewer";
export type Action = "read" | "write";

/** Weakest first: a role includes every role before it. */
export const ROLES: readonly Role[] = ["viewer", "user", "admin"];

export const ROLE_TABLE = {
  /** /jobs/{alias}, /jobs/{alias}/{jobId} */
  jobs: { read: "viewer", write: "user" },
  /** /jobs/{alias}/…/executions…, /status/{alias}/… (write: start, restart, stop, kill, redeliver a webhook) */
  executions: { read: "viewer", write: "user" },
  /** /jobs/{alias}/{jobId}/schedules… (a schedule fires as a service account, checked on its own) */
  schedules: { read: "viewer", write: "user" },
  /** /inventory/{alias} */
  inventory: { read: "viewer", write: "user" },
  /** /minions/{alias}… (write: create or revoke a registration token, revoke an agent) */
  agents: { read: "viewer", write: "admin" },
  /** /accounts/{alias}/settings (the pending timeout, the shared-pool fallback: where secrets may go) */
  settings: { read: "viewer", write: "admin" },
  /** /serviceAccounts/{alias}… */
  serviceAccounts: { read: "admin", write: "admin" },
  /** /webhooks/{alias}/secret… (read creates it on first use; write rotates it) */
  webhooks: { read: "admin", write: "admin" },
  /** /audit/{alias}: who changed what. Nobody writes it through the API (the changes do), hence admin both ways. */
  audit: { read: "admin", write: "admin" },
} as const satisfies Record<string, Record<Action, Role>>;

export type Family = keyof typeof ROLE_TABLE;

export const roleNeeded = (family: Family, action: Action): Role => ROLE_TABLE[family][action];

export const roleAtLeast = (have: Role, need: Role) => ROLES.indexOf(have) >= ROLES.indexOf(need);
