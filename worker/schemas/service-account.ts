import { z } from "@hono/zod-openapi";
import { AliasOnly, pathParam } from "./common";
import { isObject } from "./job";

/**
 * The service account entity (the original's Service Account API): what a client sends to create
 * (ServiceAccountInput) or update (ServiceAccountUpdate) one, and what is answered
 * (ServiceAccount). The password goes in and never comes out. Messages never echo input values.
 */

export const SERVICE_ACCOUNT_ROLES = ["admin", "user", "viewer"] as const;
export const MIN_PASSWORD = 12;
/** Long enough for any passphrase; PBKDF2 hashes a longer one no slower, but nothing needs more. */
export const MAX_PASSWORD = 1024;

export const ServiceAccountAlias = z.string().regex(/^[A-Za-z0-9_.-]{2,64}$/, { message: "must be 2-64 characters of A-Z, a-z, 0-9, _, . or -" });

/** ASCII only, so that "unique whatever the case" means the same to SQLite (NOCASE) and to us. */
export const Username = z.string().regex(/^[A-Za-z0-9_.@+-]{2,128}$/, { message: "must be 2-128 characters of A-Z, a-z, 0-9, _, ., @, + or -" });

export const Password = z
  .string()
  .min(MIN_PASSWORD, { message: `must be at least ${MIN_PASSWORD} characters` })
  .max(MAX_PASSWORD, { message: `must be at most ${MAX_PASSWORD} characters` })
  .openapi({ format: "password", writeOnly: true });

export const ServiceAccountRole = z.enum(SERVICE_ACCOUNT_ROLES, { message: "must be one of admin, user, viewer" });

/** The password may not be the username (whatever the case): the first guess anyone makes. */
function passwordNotUsername(v: { username?: unknown; password?: unknown }, ctx: z.RefinementCtx) {
  if (typeof v.username === "string" && typeof v.password === "string" && v.username.toLowerCase() === v.password.toLowerCase()) {
    ctx.addIssue({ code: "custom", path: ["password"], message: "must not be the username" });
  }
}

export const ServiceAccountInput = z
  .object({
    alias: ServiceAccountAlias,
    username: Username,
    password: Password,
    role: ServiceAccountRole.default("user").openapi({ description: "admin, user (default) or viewer; in this account only." }),
  })
  .superRefine(passwordNotUsername, { when: (p) => isObject(p.value) })
  .openapi("ServiceAccountInput");
export type ServiceAccountInput = z.output<typeof ServiceAccountInput>;

/**
 * PUT: `username`, `password` and `role`, each optional (what is left out is kept, so a client may
 * send back what GET answered, with a new password). The read-only fields GET answered are
 * accepted and ignored; `alias`, if sent, must be the one in the path (an alias does not change).
 */
export const ServiceAccountUpdate = z
  .object({
    username: Username.optional(),
    password: Password.optional(),
    role: ServiceAccountRole.optional(),
    alias: ServiceAccountAlias.optional(),
    id: z.unknown().optional().openapi({ description: "Read-only: ignored." }),
    accountAlias: z.unknown().optional().openapi({ description: "Read-only: ignored." }),
    createdTime: z.unknown().optional().openapi({ description: "Read-only: ignored." }),
    lastUpdatedTime: z.unknown().optional().openapi({ description: "Read-only: ignored." }),
  })
  .superRefine(passwordNotUsername, { when: (p) => isObject(p.value) })
  .openapi("ServiceAccountUpdate");
export type ServiceAccountUpdate = z.output<typeof ServiceAccountUpdate>;

export const ServiceAccount = z
  .object({
    id: z.string(),
    accountAlias: z.string(),
    alias: z.string(),
    username: z.string(),
    role: ServiceAccountRole,
    createdTime: z.number().int(),
    lastUpdatedTime: z.number().int(),
  })
  .openapi("ServiceAccount");
export type ServiceAccount = z.infer<typeof ServiceAccount>;

/** The original answered `{"accounts": [aliases]}`; `results` (and the paging members) are ours. */
export const ServiceAccountList = z
  .object({
    accounts: z.array(z.string()).openapi({ description: "The aliases of this page, as the original answered." }),
    totalSize: z.number().int(),
    page: z.number().int(),
    size: z.number().int(),
    results: z.array(ServiceAccount),
  })
  .openapi("ServiceAccountList");
export type ServiceAccountList = z.infer<typeof ServiceAccountList>;

export const ServiceAccountParams = AliasOnly.extend({ serviceAccountAlias: pathParam("serviceAccountAlias", "deployer") });
