import { z } from "@hono/zod-openapi";
import { callbackUrlProblem, isLoopbackOnlyProblem } from "../lib/callback-url";
import { base64ToBytes } from "../lib/encoding";
import { AliasOnly, jsonObject, pageSchema, pathParam } from "./common";

/**
 * The job entity: what a client sends to create (JobInput) or replace (JobReplace) a job, and
 * what the API answers (Job). One schema per shape is the single source for validation, the
 * TypeScript types and /openapi.json.
 *
 * Rules that span fields (exactly one playbook source, hosts unless dynamic inventory, unique host
 * ids, `repository: {}` meaning "none") run with `when: isObject` so that they report alongside
 * the per-field issues: a 400 names every bad field at once. Messages never echo input values
 * (they may be secrets).
 */

export const CALLBACK_LEVELS = ["DEBUG", "ERROR", "RESULT"] as const;
export const DEFAULT_EXECUTION_TTL = 180;
export const MAX_EXECUTION_TTL = 10080;
/** Bound on `forks`: beyond it one agent's machine runs out of processes long before Ansible gains anything. */
export const MAX_FORKS = 500;

// ---------------------------------------------------------------- value checks (shared)

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Decodes standard or URL-safe base64 (padding optional, whitespace ignored); null if it is not base64. */
export function decodeBase64(text: string): Uint8Array | null {
  const s = text.replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  const bare = s.replace(/=+$/, "");
  if (bare.length % 4 === 1) return null;
  if (s.length !== bare.length && s.length % 4 !== 0) return null;
  try {
    return base64ToBytes(bare);
  } catch {
    return null;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Why a playbook is unacceptable, or null: base64 of non-empty UTF-8 text. */
export function playbookProblem(text: string): string | null {
  const bytes = decodeBase64(text);
  if (!bytes) return "must be base64 (of one playbook file)";
  let decoded: string;
  try {
    decoded = utf8.decode(bytes);
  } catch {
    return "must be base64 of UTF-8 text";
  }
  return decoded.trim() ? null : "must not be empty once decoded";
}

/** A private key: base64 of the key file (the documented form) or the PEM text itself (agents accept both). */
function sshKeyProblem(text: string): string | null {
  if (/^\s*-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) return null;
  const bytes = decodeBase64(text);
  if (!bytes || bytes.length === 0) return "must be base64 of the private key file";
  return null;
}

/** Env-dependent rules the static schema cannot know: field errors for a raw job body. */
export function jobEnvProblems(body: unknown, allowLoopbackHttp: boolean): { field: string; message: string }[] {
  if (allowLoopbackHttp || !isObject(body) || !Array.isArray(body.callbacks)) return [];
  const out: { field: string; message: string }[] = [];
  body.callbacks.forEach((cb, i) => {
    if (!isObject(cb) || typeof cb.url !== "string") return;
    // Only what the static schema let through: anything else it names itself.
    if (isLoopbackOnlyProblem(cb.url)) out.push({ field: `callbacks.${i}.url`, message: callbackUrlProblem(cb.url, false)! });
  });
  return out;
}

const NO_CONTROL = /^[^\u0000-\u001f\u007f]*$/;

/**
 * Why a repository URL is unacceptable because it carries credentials, or null. They would be
 * stored in plain text and answered to every viewer: they belong in `repository.credentials`
 * (stored encrypted, never answered). An ssh user (`ssh://git@host/…`, scp-like `git@host:path`)
 * is not a secret; an ssh password is.
 */
export function repositoryUrlCredentialsProblem(url: string): string | null {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#\\]*)@/.exec(url);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  if (scheme === "ssh" && !m[2]!.includes(":")) return null;
  return scheme === "ssh"
    ? "must not carry a password: give it in repository.credentials"
    : "must not carry credentials (user:password@): give them in repository.credentials (username, password)";
}

/** The URL as shown: a credentialed URL stored before they were refused is answered without them. */
export function displayRepositoryUrl(url: string): string {
  if (!repositoryUrlCredentialsProblem(url)) return url;
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#\\]*@/, "$1");
}

/**
 * The secret in a credentialed URL stored before they were refused (its password, or a lone
 * https user, which is how tokens are often given), for the agent to redact; else null.
 */
export function repositoryUrlSecret(url: string): string | null {
  if (!repositoryUrlCredentialsProblem(url)) return null;
  const userinfo = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#\\]*)@/.exec(url)![1]!;
  const colon = userinfo.indexOf(":");
  const raw = colon >= 0 ? userinfo.slice(colon + 1) : userinfo;
  try {
    return decodeURIComponent(raw) || null;
  } catch {
    return raw || null;
  }
}

/** Names Ansible gives its implicit groups: never a host id, nor a group a host is put in. */
export const IMPLICIT_GROUPS: ReadonlySet<string> = new Set(["all", "ungrouped"]);

// ---------------------------------------------------------------- field schemas

const text = (max: number) => z.string().max(max, { message: `must be at most ${max} characters` });

const sshPrivateKey = z
  .string()
  .max(64 * 1024, { message: "must be at most 65536 characters" })
  .superRefine((v, ctx) => {
    const p = sshKeyProblem(v);
    if (p) ctx.addIssue({ code: "custom", message: p });
  })
  .openapi({ description: "A private key: base64 of the key file (or its PEM text). Write-only: never answered." });

const secretField = sshPrivateKey.nullish();

const Callback = z
  .object({
    url: z
      .string()
      .max(2048, { message: "must be at most 2048 characters" })
      .superRefine((v, ctx) => {
        // Every rule but one: whether loopback is allowed is checked against the environment (jobEnvProblems).
        const p = callbackUrlProblem(v, true);
        if (p) ctx.addIssue({ code: "custom", message: p });
      })
      .openapi({
        description:
          "Absolute https URL of a public host: no credentials, no loopback, private, link-local or unique-local address, no localhost, .local or .internal name (loopback only in local development).",
        example: "https://hooks.example.com/runner",
      }),
    level: z.enum(CALLBACK_LEVELS).nullish().openapi({ default: "DEBUG" }),
  })
  .openapi("Callback");

/** A host's variables (Ansible host vars); `rnr_location` routes work (docs/agent-protocol.md, "Lease"). Shared with the inventory. */
export const hostVars = jsonObject("hostVars").superRefine((v, ctx) => {
  if ("rnr_location" in v && v.rnr_location !== null && (typeof v.rnr_location !== "string" || !v.rnr_location.trim() || v.rnr_location.length > 64)) {
    ctx.addIssue({ code: "custom", path: ["rnr_location"], message: "must be a location name (1-64 characters)" });
  }
});

/**
 * A host's id: its Ansible inventory name (also what a restart's `--limit` names). Shared with the
 * inventory and the start/restart bodies. Ansible would read `[`…`]` as a range (`web[0:299999]`
 * is 300,000 hosts) and `all`/`ungrouped` as every host.
 */
export const HostId = z
  .string()
  .min(1, { message: "must not be empty" })
  .max(255, { message: "must be at most 255 characters" })
  .regex(/^[^\s,]*$/, { message: "must not contain whitespace or commas" })
  .regex(NO_CONTROL, { message: "must not contain control characters" })
  .regex(/^[^[\]]*$/, { message: "must not contain [ or ] (Ansible expands them as a host range)" })
  .refine((id) => !IMPLICIT_GROUPS.has(id), { message: "must not be all or ungrouped (Ansible's implicit groups)" });

/** One `--tags` value: a comma or whitespace would split it into others. Shared with the start body. */
export const PlaybookTag = z
  .string()
  .min(1, { message: "must not be empty" })
  .max(100, { message: "must be at most 100 characters" })
  .regex(/^[^,\s]*$/, { message: "must not contain commas or whitespace" });
export const MAX_PLAYBOOK_TAGS = 100;

const HostInput = z
  .object({
    id: HostId,
    hostVars: hostVars.nullish(),
    sshPrivateKey: secretField,
  })
  .openapi("HostInput");

const Credentials = z
  .object({
    username: text(255).nullish(),
    password: z
      .string()
      .min(1, { message: "must not be empty (use null to remove it)" })
      .max(4096, { message: "must be at most 4096 characters" })
      .nullish()
      .openapi({ description: "Write-only: never answered." }),
    sshPrivateKey: secretField,
  })
  .openapi("RepositoryCredentials");

const RepositoryInput = z
  .object({
    url: z
      .string()
      .max(2048, { message: "must be at most 2048 characters" })
      .regex(/^(?:(?:https?|ssh|git):\/\/[^\s/]+\/?[^\s]*|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$/, {
        message: "must be an https://, http://, ssh://, git:// or user@host:path git URL",
      })
      .superRefine((v, ctx) => {
        const p = repositoryUrlCredentialsProblem(v);
        if (p) ctx.addIssue({ code: "custom", message: p });
      })
      .optional(),
    branch: z
      .string()
      .min(1, { message: "must not be empty" })
      .max(255, { message: "must be at most 255 characters" })
      .regex(/^(?!-)[^\s~^:?*[\\]*$/, { message: "must be a git branch or tag name" })
      .nullish(),
    defaultPlaybook: z
      .string()
      .min(1, { message: "must not be empty" })
      .max(1024, { message: "must be at most 1024 characters" })
      .regex(/^(?![-/])(?!.*(?:^|\/)\.\.(?:\/|$))[^\0\n\r]*$/, { message: "must be a relative path inside the repository" })
      .optional(),
    credentials: Credentials.nullish(),
  })
  .superRefine(
    (v, ctx) => {
      // `repository: {}` means "no repository" (clients PUT back what they read); anything else needs both.
      if (!hasContent(v)) return;
      if (v.url === undefined) ctx.addIssue({ code: "custom", path: ["url"], message: "is required" });
      if (v.defaultPlaybook === undefined) ctx.addIssue({ code: "custom", path: ["defaultPlaybook"], message: "is required" });
    },
    { when: (p) => isObject(p.value) },
  )
  .openapi("RepositoryInput", { description: "A git repository holding the playbook. `url` and `defaultPlaybook` are required; `{}` means none." });

/** Whether an object has any key with a value other than null/undefined. */
export function hasContent(v: unknown): boolean {
  return isObject(v) && Object.values(v).some((x) => x !== undefined && x !== null);
}

const fields = {
  name: text(200).nullish(),
  description: text(4000).nullish(),
  executionTtl: z
    .number()
    .int({ message: "must be a whole number of minutes" })
    .min(1, { message: "must be at least 1 minute" })
    .max(MAX_EXECUTION_TTL, { message: `must be at most ${MAX_EXECUTION_TTL} minutes (7 days)` })
    .nullish()
    .openapi({ default: DEFAULT_EXECUTION_TTL, description: "Minutes an execution may run before it is stopped." }),
  callbacks: z.array(Callback).max(20, { message: "must have at most 20 callbacks" }).nullish(),
  playbook: z
    .string()
    .max(1024 * 1024)
    .superRefine((v, ctx) => {
      const p = playbookProblem(v);
      if (p) ctx.addIssue({ code: "custom", message: p });
    })
    .nullish()
    .openapi({ description: "Base64 of one playbook file. Exactly one of playbook or repository." }),
  repository: RepositoryInput.nullish(),
  playbookTags: z
    .array(PlaybookTag)
    .max(MAX_PLAYBOOK_TAGS, { message: `must have at most ${MAX_PLAYBOOK_TAGS} tags` })
    .nullish(),
  hosts: z.array(HostInput).max(1000, { message: "must have at most 1000 hosts" }).nullish(),
  properties: jsonObject("properties").nullish().openapi({ description: "Extra variables (ansible-playbook --extra-vars)." }),
  sshPrivateKey: secretField,
  useDynamicInventory: z.boolean().nullish(),
  location: z
    .string()
    .min(1, { message: "must not be empty" })
    .max(64, { message: "must be at most 64 characters" })
    .regex(NO_CONTROL, { message: "must not contain control characters" })
    .nullish()
    .openapi({ description: "Routes executions to agents of this location." }),
  forks: z
    .number({ message: "must be a whole number" })
    .int({ message: "must be a whole number" })
    .min(1, { message: "must be at least 1 (omit it or give null for Ansible's default)" })
    .max(MAX_FORKS, { message: `must be at most ${MAX_FORKS}` })
    .nullish()
    .openapi({ description: "Hosts ansible-playbook works on at once (`--forks`); null or absent: Ansible's default (5, or the agent's ANSIBLE_FORKS)." }),
};

/** The rules that span fields, checked even when some fields are already wrong. */
function crossFieldRules(v: Record<string, unknown>, ctx: z.RefinementCtx) {
  // A wrongly typed value still counts as "given": its own issue names it, this rule does not.
  const playbookGiven = v.playbook !== undefined && v.playbook !== null;
  const repositoryGiven = hasContent(v.repository) || (v.repository !== undefined && v.repository !== null && !isObject(v.repository));
  if (!playbookGiven && !repositoryGiven) {
    ctx.addIssue({ code: "custom", path: ["playbook"], message: "exactly one of playbook or repository is required" });
  } else if (playbookGiven && repositoryGiven) {
    ctx.addIssue({ code: "custom", path: ["repository"], message: "give either playbook or repository, not both" });
  }
  const hosts = v.hosts;
  const dynamic = v.useDynamicInventory === true;
  if (!dynamic && (hosts === undefined || hosts === null || (Array.isArray(hosts) && hosts.length === 0))) {
    ctx.addIssue({ code: "custom", path: ["hosts"], message: "at least one host is required unless useDynamicInventory is true" });
  }
  if (Array.isArray(hosts)) {
    const seen = new Set<string>();
    hosts.forEach((h, i) => {
      if (!isObject(h) || typeof h.id !== "string" || !h.id) return;
      if (seen.has(h.id)) ctx.addIssue({ code: "custom", path: ["hosts", i, "id"], message: "duplicates an earlier host id" });
      seen.add(h.id);
    });
  }
}

export const JobInput = z
  .object(fields)
  .superRefine(crossFieldRules, { when: (p) => isObject(p.value) })
  .openapi("JobInput", {
    description: "A job definition. Exactly one of `playbook` or `repository`; `hosts` unless `useDynamicInventory`. Unknown fields are ignored.",
  });
export type JobInput = z.infer<typeof JobInput>;

export const JobReplace = z
  .object(fields)
  .superRefine(crossFieldRules, { when: (p) => isObject(p.value) })
  .openapi("JobReplace", {
    description:
      "The whole definition, as for create. Read-only fields of a Job (id, times, links, has… flags) are accepted and ignored; " +
      "`name: null` and `repository: {}` mean absent. A secret the body omits (sshPrivateKey, repository password/sshPrivateKey, " +
      "a host's sshPrivateKey matched by host id) keeps its stored value; an explicit null removes it.",
  });
export type JobReplace = z.infer<typeof JobReplace>;

// ---------------------------------------------------------------- the answer

const HostView = z.object({ id: z.string(), hostVars: z.record(z.string(), z.unknown()), hasSshPrivateKey: z.boolean() }).openapi("Host");

const RepositoryView = z
  .object({
    url: z.string(),
    branch: z.string().nullable(),
    defaultPlaybook: z.string(),
    credentials: z
      .object({ username: z.string().nullable(), hasPassword: z.boolean(), hasSshPrivateKey: z.boolean() })
      .nullable()
      .openapi("RepositoryCredentialsView"),
  })
  .openapi("Repository");

export const Job = z
  .object({
    id: z.string(),
    accountAlias: z.string(),
    name: z.string().nullable(),
    description: z.string().nullable(),
    executionTtl: z.number().int(),
    callbacks: z.array(z.object({ url: z.string(), level: z.enum(CALLBACK_LEVELS) })),
    playbook: z.string().nullable(),
    repository: RepositoryView.nullable(),
    playbookTags: z.array(z.string()),
    hosts: z.array(HostView),
    properties: z.record(z.string(), z.unknown()),
    hasSshPrivateKey: z.boolean(),
    useDynamicInventory: z.boolean(),
    location: z.string().nullable(),
    forks: z.number().int().nullable(),
    status: z.literal("ACTIVE"),
    createdTime: z.number().int().openapi({ description: "Epoch milliseconds." }),
    lastUpdatedTime: z.number().int().openapi({ description: "Epoch milliseconds." }),
    links: z.object({ self: z.string(), executions: z.string(), start: z.string(), schedules: z.string() }),
  })
  .openapi("Job", { description: "A job as answered. Secrets are never answered: `has…` flags say whether one is stored." });
export type Job = z.infer<typeof Job>;

export const JobPage = pageSchema(Job, "JobPage");

// ---------------------------------------------------------------- path and query

export const JobIdParam = pathParam("jobId");
/** `/{alias}/{jobId}` */
export const JobParams = AliasOnly.extend({ jobId: JobIdParam });

export const ImmediateQuery = z.object({
  immediate: z
    .enum(["true", "false", ""], { message: "must be true or false" })
    .optional()
    .openapi({ param: { name: "immediate", in: "query" }, description: "Also start an execution (the answer then carries `execution`)." }),
});
