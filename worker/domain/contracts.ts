/**
 * The seams between modules built side by side: the Jobs domain, the Execution object and the
 * Dispatcher object. Each side implements its half with exactly these names and shapes.
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

/**
 * Jobs domain (worker/domain/jobs.ts) exports, for the executions side:
 *   loadJobForLease(env: Env, accountAlias: string, jobId: string): Promise<JobForLease | null>
 *   getJobSummary(env: Env, accountAlias: string, jobId: string): Promise<{ id: string; executionTtl: number; location: string | null; hostLocations: string[]; callbacks: { url: string; level: "DEBUG" | "ERROR" | "RESULT" }[] } | null>
 * Secret values (sshPrivateKey, repository password) come back decrypted only from loadJobForLease.
 *
 * Executions domain (worker/domain/executions.ts) exports, for the jobs routes:
 *   startExecution(env: Env, accountAlias: string, jobId: string, opts: { trigger: "api" | "schedule"; scheduleId?: string; overrides?: StartOverrides }): Promise<ExecutionView>
 *   hasActiveExecution(env: Env, accountAlias: string, jobId: string): Promise<boolean>   // served by the D1 index
 *
 * Dispatcher (worker/dispatcher.do.ts, one per key from dispatcherKey()) RPC, for the Execution object:
 *   enqueue(item: DispatchItem): Promise<void>          // idempotent by executionId
 *   remove(executionId: string): Promise<void>          // stopped/killed while PENDING
 *   finished(executionId: string): Promise<void>        // left INITIALIZING/RUNNING: frees a concurrency slot
 * and for the agent routes:
 *   poll(agent: { agentId: string }, waitMs: number): Promise<LeaseBody | null>
 *   // Added by the dispatch side: `agent.alive?: () => boolean` (an RPC callback the dispatcher asks
 *   // right before granting, so an abandoned poll never swallows a lease), and
 *   // agentRevoked(agentId: string): Promise<void> (drops its waiting polls; the minions DELETE calls it).
 *
 * Execution (worker/execution.do.ts, idFromName(executionId)) RPC used by the Dispatcher and agent routes
 * (through executionClient(), which answers the Outcome's value or throws its ProblemError; see below):
 *   grantLease(agentId: string): Promise<LeaseBody | null>   // PENDING → INITIALIZING; null if no longer PENDING
 *   heartbeat(agentId: string, attempt: number): Promise<Outcome<AgentAnswer>>
 *   report(agentId: string, body: StatusReport): Promise<Outcome<AgentAnswer & { status: string }>>
 *   uploadEvents(agentId: string, body: EventUpload): Promise<Outcome<AgentAnswer & { acceptedThrough: number }>>
 *   release(agentId: string, attempt: number): Promise<Outcome<AgentAnswer>>
 *   agentRevoked(agentId: string): Promise<void>            // its lease is lost at once
 */
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

// Added by the executions side (Execution object owns the lease clock): the protocol's timing,
// one source for the register answer, the lease body and the Execution object's alarms.
export const LEASE_TTL_MS = 30_000;
/**
 * A lease not yet acknowledged by any agent call is held this long only: a long poll whose agent
 * had already gone (a disconnect the platform did not report) gives the work back within seconds.
 * Agents acknowledge at once with their first heartbeat.
 */
export const LEASE_ACK_MS = 10_000;
export const HEARTBEAT_INTERVAL_MS = 5_000;
/**
 * Added by the executions side. LeaseBody and the agent body schemas (StatusReport, EventUpload)
 * live in worker/schemas/execution.ts. Execution RPC beyond the list above (worker/execution.do.ts):
 *   init(input: InitInput): Promise<ExecutionView>           // idempotent per executionId
 *   view(scope?) / stop(scope, expirySeconds) / kill(scope) / restart(scope, secretOverrides?, dispatcherKey?)
 *   events(scope?, after, page, size) / logChunk(scope?, after, maxBytes?, waitMs?) / eventCount() / sweep()
 * `scope` = { accountAlias, jobId? }: a mismatch is 404. grantLease throws on a transient failure
 * (the dispatcher re-queues); it answers null when the execution is no longer PENDING or cannot run.
 * Methods that may refuse (view, stop, kill, restart, events, logChunk, heartbeat, report,
 * uploadEvents, release) answer an `Outcome` (worker/lib/problem.ts) rather than throw; callers
 * go through `executionClient()` (worker/domain/execution-client.ts), which throws the refusal
 * again as the ProblemError it was. The abandon answer carries `extensions: { command: "abandon" }`.
 * A lease of a job with `useDynamicInventory` carries the account inventory as it is at the grant
 * (`loadInventoryForLease` in worker/domain/inventory.ts).
 */
export type { LeaseBody, StatusReport, EventUpload } from "../schemas/execution";
