/**
 * The body of a lease (docs/agent-protocol.md): the job as stored, merged with the execution's
 * overrides, and every secret value in it for the agent to redact. Pure: the Execution object
 * loads and decrypts, this only assembles.
 */
import { HEARTBEAT_INTERVAL_MS, type JobForLease, type PlainOverrides, type SecretOverrides } from "../domain/contracts";
import type { JsonField, LeaseBody } from "../schemas/execution";
import { repositoryUrlSecret } from "../schemas/job";

/** JSON from the job and the start body, as the lease's wire type. */
const json = (r: Record<string, unknown> | undefined) => r as Record<string, JsonField> | undefined;

/** The job with this execution's overrides: extra vars merged over the job's, keys in place of the stored ones. */
export function mergeJob(job: JobForLease, o: PlainOverrides, secret: SecretOverrides): LeaseBody["job"] {
  const hostKeys = new Map((secret.hosts ?? []).map((h) => [h.id, h.sshPrivateKey]));
  const out: LeaseBody["job"] = {
    name: job.name ?? null,
    executionTtl: job.executionTtl,
    hosts: job.hosts.map((h) => {
      const key = hostKeys.get(h.id);
      return { ...h, hostVars: json(h.hostVars), ...(key ? { sshPrivateKey: key } : {}) };
    }),
    sshPrivateKey: secret.sshPrivateKey ?? job.sshPrivateKey ?? null,
    properties: { ...json(job.properties), ...json(o.properties) },
    playbookTags: o.playbookTags ?? job.playbookTags,
    useDynamicInventory: job.useDynamicInventory,
  };
  // Only when set: a lease without it is what agents that predate the field were handed.
  if (job.forks) out.forks = job.forks;
  if (job.playbook !== undefined) out.playbook = job.playbook;
  if (job.repository !== undefined) out.repository = job.repository;
  return out;
}

/** Every secret value in a lease job, and the decoded PEM of base64 keys, for the agent to redact. */
export function secretValues(job: LeaseBody["job"]): string[] {
  const raw = [
    job.sshPrivateKey,
    job.repository ? repositoryUrlSecret(job.repository.url) : null,
    job.repository?.credentials?.password,
    job.repository?.credentials?.sshPrivateKey,
    ...job.hosts.map((h) => h.sshPrivateKey),
  ].filter((v): v is string => typeof v === "string" && v.length > 0);
  const out = new Set<string>(raw);
  for (const v of raw) {
    if (!/^[A-Za-z0-9+/=\s]+$/.test(v)) continue;
    try {
      const decoded = atob(v.replace(/\s+/g, ""));
      if (decoded.includes("PRIVATE KEY")) out.add(decoded);
    } catch {
      // not base64: the raw value is enough
    }
  }
  return [...out];
}

/** The secret part of start/restart overrides, or null when there is none (nothing to encrypt). */
export function secretPart(o: SecretOverrides): SecretOverrides | null {
  const secret: SecretOverrides = {};
  const keyed = o.hosts?.filter((h) => h.sshPrivateKey);
  if (keyed?.length) secret.hosts = keyed.map((h) => ({ id: h.id, sshPrivateKey: h.sshPrivateKey }));
  if (o.sshPrivateKey) secret.sshPrivateKey = o.sshPrivateKey;
  return Object.keys(secret).length ? secret : null;
}

/** What a lease says of the execution it hands out (the State satisfies it). */
export interface LeaseSource {
  id: string;
  attempt: number;
  accountAlias: string;
  jobId: string;
  ttlAt: number;
  limit: string[] | null;
  overrides: PlainOverrides;
}

/** The lease body for the lease `leaseId`, which expires at `leaseExpiresAt`. */
export function leaseBody(
  s: LeaseSource,
  lease: { leaseId: string; leaseExpiresAt: number },
  job: JobForLease,
  secret: SecretOverrides,
  inventory: LeaseBody["inventory"],
): LeaseBody {
  const merged = mergeJob(job, s.overrides, secret);
  return {
    executionId: s.id,
    attempt: s.attempt,
    leaseId: lease.leaseId,
    accountAlias: s.accountAlias,
    jobId: s.jobId,
    leaseExpiresAt: lease.leaseExpiresAt,
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    deadline: s.ttlAt,
    job: merged,
    inventory,
    limit: s.limit,
    check: s.overrides.check ?? false,
    diff: s.overrides.diff ?? false,
    secrets: secretValues(merged),
    reportEvents: true,
  };
}
