/**
 * The jobs domain: create, replace (with the keep-omitted-secrets rule), delete, read, and the two
 * views the executions side needs (a lease's job with secrets decrypted, and a summary).
 * Secrets live only in the encrypted `secrets` column; the stored definition carries `has…` flags.
 */
import { hasActiveExecution } from "../db/executions";
import { deleteJobUnlessActive, getJob, insertJob, listJobs, updateJob, type JobRow } from "../db/jobs";
import { newId } from "../lib/ids";
import type { Actor } from "../schemas/audit";
import { conflict, notFound } from "../lib/problem";
import { decryptJson, encryptJson } from "../lib/secrets";
import type { Page, PageParams } from "../schemas/common";
import { ACTIVE_STATUSES } from "../schemas/execution";
import { displayRepositoryUrl, type Job, type JobInput, type JobReplace } from "../schemas/job";
import { auditStatement } from "./audit";
import type { JobForLease } from "./contracts";
import { isEmpty, split, type CallbackLevel, type JobSecrets, type StoredDefinition } from "./job-split";

export interface JobSummary {
  id: string;
  executionTtl: number;
  location: string | null;
  hostLocations: string[];
  callbacks: { url: string; level: CallbackLevel }[];
}

// ---------------------------------------------------------------- storage

async function sealSecrets(env: Env, s: JobSecrets): Promise<string | null> {
  return isEmpty(s) ? null : encryptJson(env, s);
}

async function openSecrets(env: Env, row: JobRow): Promise<JobSecrets> {
  return row.secrets ? decryptJson<JobSecrets>(env, row.secrets) : {};
}

function definitionOf(row: JobRow): StoredDefinition {
  return JSON.parse(row.definition) as StoredDefinition;
}

export function jobView(row: JobRow): Job {
  const d = definitionOf(row);
  const self = `/jobs/${encodeURIComponent(row.account_alias)}/${encodeURIComponent(row.id)}`;
  return {
    id: row.id,
    accountAlias: row.account_alias,
    name: d.name,
    description: d.description,
    executionTtl: d.executionTtl,
    callbacks: d.callbacks,
    playbook: d.playbook,
    // A job stored before credentialed URLs were refused still never shows them.
    repository: d.repository ? { ...d.repository, url: displayRepositoryUrl(d.repository.url) } : null,
    playbookTags: d.playbookTags,
    hosts: d.hosts,
    properties: d.properties,
    hasSshPrivateKey: d.hasSshPrivateKey,
    useDynamicInventory: d.useDynamicInventory,
    location: d.location,
    forks: d.forks ?? null,
    status: "ACTIVE",
    createdTime: row.created_time,
    lastUpdatedTime: row.last_updated_time,
    links: { self, executions: `${self}/executions`, start: `${self}/start`, schedules: `${self}/schedules` },
  };
}

// ---------------------------------------------------------------- rules

/** What the audit log keeps of a job: its name (never a secret, a playbook or a variable). */
const jobAudit = (accountAlias: string, id: string, action: "job.created" | "job.replaced" | "job.deleted", name?: string | null) =>
  ({ accountAlias, action, resource: { type: "job", id }, details: name === undefined ? {} : { name } }) as const;

export async function createJob(env: Env, accountAlias: string, input: JobInput, actor: Actor): Promise<Job> {
  const { definition, secrets } = split(input);
  const now = Date.now();
  const row: JobRow = {
    id: newId(now),
    account_alias: accountAlias,
    definition: JSON.stringify(definition),
    secrets: await sealSecrets(env, secrets),
    created_time: now,
    last_updated_time: now,
    version: 1,
  };
  await insertJob(env.DB, row, auditStatement(env.DB, actor, jobAudit(accountAlias, row.id, "job.created", definition.name)));
  return jobView(row);
}

export async function replaceJob(env: Env, accountAlias: string, jobId: string, input: JobReplace, actor: Actor): Promise<Job> {
  // Optimistic: the secrets merge is computed from the version read, and only lands on it.
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await getJob(env.DB, accountAlias, jobId);
    if (!current) throw notFound();
    const { definition, secrets } = split(input, await openSecrets(env, current));
    const row: JobRow = {
      ...current,
      definition: JSON.stringify(definition),
      secrets: await sealSecrets(env, secrets),
      last_updated_time: Math.max(Date.now(), current.last_updated_time),
      version: current.version + 1,
    };
    const audit = auditStatement(env.DB, actor, jobAudit(accountAlias, jobId, "job.replaced", definition.name), { ifChanged: true });
    if (await updateJob(env.DB, row, current.version, audit)) return jobView(row);
  }
  throw conflict("The job was changed by another request while this one replaced it; try again.");
}

export async function deleteJob(env: Env, accountAlias: string, jobId: string, actor: Actor): Promise<void> {
  const row = await getJob(env.DB, accountAlias, jobId);
  if (!row) throw notFound();
  const busy = () => conflict("The job has an active execution; stop or kill it first.");
  if (await hasActiveExecution(env.DB, accountAlias, jobId)) throw busy();
  const audit = auditStatement(env.DB, actor, jobAudit(accountAlias, jobId, "job.deleted", definitionOf(row).name), { ifChanged: true });
  if (await deleteJobUnlessActive(env.DB, accountAlias, jobId, ACTIVE_STATUSES, audit)) return;
  // Nothing went: either someone deleted it meanwhile, or an execution started meanwhile.
  if (!(await getJob(env.DB, accountAlias, jobId))) throw notFound();
  throw busy();
}

export async function readJob(env: Env, accountAlias: string, jobId: string): Promise<Job> {
  const row = await getJob(env.DB, accountAlias, jobId);
  if (!row) throw notFound();
  return jobView(row);
}

export async function listJobPage(env: Env, accountAlias: string, p: PageParams): Promise<Page<Job>> {
  const page = await listJobs(env.DB, accountAlias, p);
  return { ...page, results: page.results.map(jobView) };
}

// ---------------------------------------------------------------- for the executions side (contracts.ts)

/** The job with its secrets decrypted, for a lease handed to an authenticated agent. Nothing else decrypts. */
export async function loadJobForLease(env: Env, accountAlias: string, jobId: string): Promise<JobForLease | null> {
  const row = await getJob(env.DB, accountAlias, jobId);
  return row ? jobForLease(env, row) : null;
}

/** `loadJobForLease` of a row already read (the start's read, when the lease follows at once). */
export async function jobForLease(env: Env, row: JobRow): Promise<JobForLease> {
  const d = definitionOf(row);
  const s = await openSecrets(env, row);
  const hostKeys = new Map((s.hosts ?? []).map((h) => [h.id, h.sshPrivateKey]));
  const job: JobForLease = {
    name: d.name,
    executionTtl: d.executionTtl,
    hosts: d.hosts.map((h) => ({ id: h.id, hostVars: h.hostVars, sshPrivateKey: hostKeys.get(h.id) ?? null })),
    sshPrivateKey: s.sshPrivateKey ?? null,
    properties: d.properties,
    playbookTags: d.playbookTags,
    useDynamicInventory: d.useDynamicInventory,
    location: d.location,
  };
  if (d.forks) job.forks = d.forks;
  if (d.repository) {
    const c = d.repository.credentials;
    job.repository = {
      url: d.repository.url,
      branch: d.repository.branch,
      defaultPlaybook: d.repository.defaultPlaybook,
      credentials: c ? { username: c.username, password: s.repository?.password ?? null, sshPrivateKey: s.repository?.sshPrivateKey ?? null } : null,
    };
  } else if (d.playbook !== null) {
    job.playbook = d.playbook;
  }
  return job;
}

export async function getJobSummary(env: Env, accountAlias: string, jobId: string): Promise<JobSummary | null> {
  const row = await getJob(env.DB, accountAlias, jobId);
  return row ? summaryOf(row) : null;
}

export function summaryOf(row: JobRow): JobSummary {
  const d = definitionOf(row);
  const hostLocations = [...new Set(d.hosts.map((h) => h.hostVars.rnr_location).filter((l): l is string => typeof l === "string" && l.length > 0))];
  return { id: row.id, executionTtl: d.executionTtl, location: d.location, hostLocations, callbacks: d.callbacks };
}
