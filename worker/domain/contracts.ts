/**
 * Types and constants shared by the Jobs domain, the Execution object, the Dispatcher object and
 * the agent routes. How they call each other:
 * - an execution is created by `startExecution` (domain/executions.ts); its `Execution` object
 *   enqueues it on the dispatcher that `routeExecution` (domain/dispatch.ts) picks;
 * - an agent's long poll (`pollForLease`, domain/agents.ts) waits on its `Dispatcher`, which
 *   claims an account slot and calls `Execution.grantLease`; the lease's job comes from
 *   `loadJobForLease` (domain/jobs.ts), the only place secrets are decrypted for an agent;
 * - agent calls and user actions reach the object through `executionClient()`
 *   (domain/execution-client.ts): its methods answer an `Outcome` rather than throw, and the
 *   client throws a refusal again as the ProblemError it was.
 */

/** The job definition with secrets decrypted: what a lease carries (docs/agent-protocol.md). */
export interface JobForLease {
  name?: string | null;
  executionTtl: number;
  playbook?: string;
  repository?: {
    url: string;
    branch?: string | null;
    defaultPlaybook: string;
    credentials?: { username?: string | null; password?: string | null; sshPrivateKey?: string | null } | null;
  };
  hosts: { id: string; hostVars?: Record<string, unknown>; sshPrivateKey?: string | null }[];
  sshPrivateKey?: string | null;
  properties: Record<string, unknown>;
  playbookTags: string[];
  useDynamicInventory: boolean;
  /** The job's `location` field, if any (routing). */
  location?: string | null;
}

/** Per-execution overrides given to start/restart; the secrets in it are never stored beyond the execution. */
export interface StartOverrides {
  hosts?: { id: string; sshPrivateKey?: string | null }[];
  sshPrivateKey?: string | null;
  properties?: Record<string, unknown>;
  playbookTags?: string[];
  check?: boolean;
  diff?: boolean;
}

export interface DispatchItem {
  executionId: string;
  accountAlias: string;
  jobId: string;
  enqueuedAt: number;
}

export type AgentCommand = null | "stop" | "kill";
export interface AgentAnswer {
  leaseExpiresAt?: number;
  command: AgentCommand;
}

/** Key of the dispatcher that serves an execution or an agent: "shared", or "acct:{alias}:{location|''}". */
export function dispatcherKey(accountAlias: string | null, location: string | null | undefined): string {
  return accountAlias === null ? "shared" : `acct:${accountAlias}:${location ?? ""}`;
}

// The protocol's timing: one source for the register answer, the lease body and the object's alarms.
export const LEASE_TTL_MS = 30_000;
/**
 * A lease not yet acknowledged by any agent call is held this long only: a long poll whose agent
 * had already gone (a disconnect the platform did not report) gives the work back within seconds.
 * Agents acknowledge at once with their first heartbeat.
 */
export const LEASE_ACK_MS = 10_000;
export const HEARTBEAT_INTERVAL_MS = 5_000;
// The lease and agent body schemas live with the execution entity.
export type { LeaseBody, StatusReport, EventUpload } from "../schemas/execution";
