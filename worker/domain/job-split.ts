/**
 * A job body split into what is stored in plain text (the definition, with `has…` flags where
 * secrets were) and the secrets (encrypted as one document by domain/jobs.ts). Pure.
 */
import { DEFAULT_EXECUTION_TTL, hasContent, type JobInput, type JobReplace } from "../schemas/job";

export type CallbackLevel = "DEBUG" | "ERROR" | "RESULT";

/** The non-secret definition as stored (JSON) and answered. */
export interface StoredDefinition {
  name: string | null;
  description: string | null;
  executionTtl: number;
  callbacks: { url: string; level: CallbackLevel }[];
  playbook: string | null;
  repository: {
    url: string;
    branch: string | null;
    defaultPlaybook: string;
    credentials: { username: string | null; hasPassword: boolean; hasSshPrivateKey: boolean } | null;
  } | null;
  playbookTags: string[];
  hosts: { id: string; hostVars: Record<string, unknown>; hasSshPrivateKey: boolean }[];
  properties: Record<string, unknown>;
  hasSshPrivateKey: boolean;
  useDynamicInventory: boolean;
  location: string | null;
  /** Absent in definitions stored before the field existed: read as null. */
  forks?: number | null;
}

/** Every secret of a job; encrypted as one JSON document. Hosts as a list (ids are user text). */
export interface JobSecrets {
  sshPrivateKey?: string;
  repository?: { password?: string; sshPrivateKey?: string };
  hosts?: { id: string; sshPrivateKey: string }[];
}

/** A secret as the body gives it: a value, `null` (remove), or undefined (omitted: keep on replace). */
function merged(given: string | null | undefined, stored: string | undefined, keepOmitted: boolean): string | undefined {
  if (given === undefined) return keepOmitted ? stored : undefined;
  return given ?? undefined;
}

/**
 * Splits a validated body into the stored definition and the secrets. On replace (`stored` given),
 * an omitted secret keeps its stored value and an explicit null removes it.
 */
export function split(input: JobInput | JobReplace, stored?: JobSecrets): { definition: StoredDefinition; secrets: JobSecrets } {
  const keep = stored !== undefined;
  const secrets: JobSecrets = {};

  const jobKey = merged(input.sshPrivateKey, stored?.sshPrivateKey, keep);
  if (jobKey !== undefined) secrets.sshPrivateKey = jobKey;

  let repository: StoredDefinition["repository"] = null;
  const repo = input.repository;
  if (repo && hasContent(repo) && repo.url !== undefined && repo.defaultPlaybook !== undefined) {
    const creds = repo.credentials;
    // `credentials` omitted keeps the stored secrets; `credentials: null` removes them all.
    const keepCreds = keep && creds !== null;
    const password = merged(creds?.password, stored?.repository?.password, keepCreds);
    const repoKey = merged(creds?.sshPrivateKey, stored?.repository?.sshPrivateKey, keepCreds);
    if (password !== undefined || repoKey !== undefined) {
      secrets.repository = {};
      if (password !== undefined) secrets.repository.password = password;
      if (repoKey !== undefined) secrets.repository.sshPrivateKey = repoKey;
    }
    const username = creds?.username ?? null;
    repository = {
      url: repo.url,
      branch: repo.branch ?? null,
      defaultPlaybook: repo.defaultPlaybook,
      credentials:
        username !== null || password !== undefined || repoKey !== undefined
          ? { username, hasPassword: password !== undefined, hasSshPrivateKey: repoKey !== undefined }
          : null,
    };
  }

  const storedHostKeys = new Map((stored?.hosts ?? []).map((h) => [h.id, h.sshPrivateKey]));
  const hostSecrets: { id: string; sshPrivateKey: string }[] = [];
  const hosts = (input.hosts ?? []).map((h) => {
    const key = merged(h.sshPrivateKey, storedHostKeys.get(h.id), keep);
    if (key !== undefined) hostSecrets.push({ id: h.id, sshPrivateKey: key });
    return { id: h.id, hostVars: h.hostVars ?? {}, hasSshPrivateKey: key !== undefined };
  });
  if (hostSecrets.length) secrets.hosts = hostSecrets;

  const definition: StoredDefinition = {
    name: input.name ?? null,
    description: input.description ?? null,
    executionTtl: input.executionTtl ?? DEFAULT_EXECUTION_TTL,
    callbacks: (input.callbacks ?? []).map((c) => ({ url: c.url, level: c.level ?? "DEBUG" })),
    playbook: repository ? null : (input.playbook ?? null),
    repository,
    playbookTags: input.playbookTags ?? [],
    hosts,
    properties: input.properties ?? {},
    hasSshPrivateKey: jobKey !== undefined,
    useDynamicInventory: input.useDynamicInventory ?? false,
    location: input.location ?? null,
    forks: input.forks ?? null,
  };
  return { definition, secrets };
}

export function isEmpty(s: JobSecrets): boolean {
  return s.sshPrivateKey === undefined && s.repository === undefined && s.hosts === undefined;
}
