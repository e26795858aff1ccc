// Shapes of the agent protocol (docs/agent-protocol.md), as the agent sees them.

export type AgentCommand = null | "stop" | "kill";

export interface RegisterAnswer {
  agentId: string;
  credential: string;
  accountAlias: string | null;
  location: string | null;
  shared: boolean;
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
  pollWaitMs: number;
}

export interface LeaseHost {
  id: string;
  hostVars?: Record<string, unknown> | null;
  sshPrivateKey?: string | null;
}

export interface LeaseRepository {
  url: string;
  branch?: string | null;
  defaultPlaybook: string;
  credentials?: { username?: string | null; password?: string | null; sshPrivateKey?: string | null } | null;
}

export interface LeaseJob {
  name?: string | null;
  executionTtl?: number;
  playbook?: string | null;
  repository?: LeaseRepository | null;
  hosts?: LeaseHost[] | null;
  sshPrivateKey?: string | null;
  properties?: Record<string, unknown> | null;
  playbookTags?: string[] | null;
  useDynamicInventory?: boolean | null;
}

export interface InventoryHost {
  id: string;
  groups?: string[] | null;
  hostVars?: Record<string, unknown> | null;
}

export interface Lease {
  executionId: string;
  attempt: number;
  leaseId: string;
  accountAlias?: string | null;
  jobId?: string;
  leaseExpiresAt?: number;
  heartbeatIntervalMs?: number;
  /** When the execution's TTL runs out (server clock). */
  deadline?: number | null;
  job: LeaseJob;
  inventory?: { hosts: InventoryHost[] } | null;
  limit?: string[] | null;
  check?: boolean;
  diff?: boolean;
  secrets?: string[] | null;
}

/** One event as uploaded. */
export interface WireEvent {
  seq: number;
  timestamp: number;
  event_type: string;
  play: string | null;
  task: string | null;
  host: string | null;
  stdout: string;
  data: Record<string, unknown>;
}

/** An event before the sink numbers it. */
export type EventInput = Omit<WireEvent, "seq">;

export type TerminalStatus = "SUCCESS" | "FAILURE" | "INIT_FAILURE" | "STOPPED" | "KILLED";
export type ReportedStatus = "INITIALIZING" | "RUNNING" | TerminalStatus;

export interface HostStats {
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
  rescued: number;
  ignored: number;
}

export interface RepositoryLog {
  commit: string;
  author: string;
  author_email: string;
  date: number;
  message: string;
  branch: string | null;
}

/** Names the lease a per-execution call belongs to: the server refuses a stale one (409 abandon). */
export interface LeaseRef {
  attempt: number;
  leaseId: string;
}

/** A status report without `attempt`/`leaseId` (the session adds them). */
export interface StatusReport {
  status?: ReportedStatus;
  exitCode?: number | null;
  hostStats?: Record<string, HostStats>;
  failedHosts?: string[];
  reason?: string;
  detail?: string;
  repositoryLog?: RepositoryLog;
}

export const TERMINAL: ReadonlySet<string> = new Set(["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"]);
