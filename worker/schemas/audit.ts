import { z } from "@hono/zod-openapi";
import { PageQuery, pageSchema, queryInt } from "./common";

/**
 * The audit log entity: one change, who made it, to what, when and from where (GET /audit/{alias}).
 * Written only by worker/domain/audit.ts; `details` holds a few non-secret facts, never a secret.
 */

/** Every change the log records. A new kind of change adds its action here (and to the README). */
export const AUDIT_ACTIONS = [
  "job.created",
  "job.replaced",
  "job.deleted",
  "execution.started",
  "execution.stopped",
  "execution.killed",
  "execution.restarted",
  "schedule.created",
  "schedule.replaced",
  "schedule.deleted",
  "serviceAccount.created",
  "serviceAccount.changed",
  "serviceAccount.deleted",
  "registrationToken.created",
  "registrationToken.revoked",
  "agent.registered",
  "agent.revoked",
  "inventory.replaced",
  "login.succeeded",
  "login.failed",
  "webhookSecret.read",
  "webhookSecret.rotated",
  "accountSettings.changed",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** What an action was done to; `?resource=` names one of these, alone or as `type/id`. */
export const AUDIT_RESOURCE_TYPES = [
  "job",
  "execution",
  "schedule",
  "serviceAccount",
  "registrationToken",
  "agent",
  "inventory",
  "webhook",
  "account",
] as const;
export type AuditResourceType = (typeof AUDIT_RESOURCE_TYPES)[number];

/**
 * Who acted: a person's token (`user`: a development or OIDC token), a service account's login
 * token (`serviceAccount`), an operator token (accounts "*"), an agent (its own registration),
 * a schedule firing (the cron), or nobody known (`anonymous`: a failed login of an unknown username).
 */
export const ACTOR_KINDS = ["user", "serviceAccount", "operator", "agent", "schedule", "anonymous"] as const;
export type ActorKind = (typeof ACTOR_KINDS)[number];

/** Where a request came from: the client's IP as Cloudflare saw it (null locally), and its request id. */
export interface Origin {
  ip: string | null;
  requestId: string | null;
}

/** Who acted, and from where (see `actorOf` in worker/lib/request-context.ts). */
export interface Actor extends Origin {
  /** The token's subject (`sub`), a service account's or agent's id, or a schedule's id. */
  subject: string;
  kind: ActorKind;
}

/** Non-secret facts about one change: short strings, numbers, flags, lists of names (undefined: left out). */
export type AuditDetails = Record<string, string | number | boolean | null | string[] | undefined>;

export const AuditEntry = z
  .object({
    id: z.string(),
    accountAlias: z.string().nullable(),
    time: z.number().int().openapi({ description: "When, in epoch milliseconds." }),
    action: z.enum(AUDIT_ACTIONS),
    subject: z.string().openapi({ description: "Who: the token's subject, a service account's or agent's id, a schedule's id." }),
    subjectKind: z.enum(ACTOR_KINDS),
    resourceType: z.enum(AUDIT_RESOURCE_TYPES),
    resourceId: z.string().nullable(),
    ip: z.string().nullable().openapi({ description: "The client's IP (CF-Connecting-IP); null when unknown." }),
    requestId: z.string().nullable().openapi({ description: "The request's Runner-Request-Id, as in the Worker's log line." }),
    details: z.record(z.string(), z.unknown()).openapi({ description: "A few non-secret facts (a job's name, a role, the keys an override set)." }),
  })
  .openapi("AuditEntry");
export type AuditEntry = z.infer<typeof AuditEntry>;

export const AuditPage = pageSchema(AuditEntry, "AuditPage");

const RESOURCE_RE = new RegExp(`^(${AUDIT_RESOURCE_TYPES.join("|")})(?:/([A-Za-z0-9_.:-]{1,128}))?$`);

/** `?resource=job` or `?resource=job/{id}`, parsed. */
export function parseResource(s: string): { type: AuditResourceType; id?: string } {
  const m = RESOURCE_RE.exec(s)!;
  return { type: m[1] as AuditResourceType, ...(m[2] !== undefined ? { id: m[2] } : {}) };
}

export const AuditQuery = PageQuery.extend({
  since: queryInt("since", 0, 99_999_999_999_999, 0, "Only entries at or after this time (epoch milliseconds)."),
  resource: z
    .string()
    .regex(RESOURCE_RE, { message: `must be a resource type (${AUDIT_RESOURCE_TYPES.join(", ")}), or type/id` })
    .optional()
    .openapi({ param: { name: "resource", in: "query" }, description: "Only entries about this resource type, or one resource (`job/{jobId}`)." }),
});
export type AuditQuery = z.output<typeof AuditQuery>;
