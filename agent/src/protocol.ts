// The agent protocol's shapes (docs/agent-protocol.md), generated from the worker's zod schemas
// (GET /openapi.json) by test/static/protocol.test.ts: do not edit; `npm run protocol` writes it.
// agent/src/types.ts names what the agent uses of them.

export type AgentRegister = {
  token?: string;
  name?: string;
  location?: string | null;
  version?: string | null;
  hostname?: string | null;
  concurrency?: number;
};

export type AgentRegistration = {
  agentId: string;
  credential: string;
  accountAlias: string | null;
  location: string | null;
  shared: boolean;
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
  pollWaitMs: number;
};

export type LeaseRequest = {
  running?: string[];
  capacity?: number;
  concurrency?: number;
  waitMs?: number;
};

export type Lease = {
  executionId: string;
  attempt: number;
  leaseId: string;
  accountAlias: string;
  jobId: string;
  leaseExpiresAt: number;
  heartbeatIntervalMs: number;
  deadline: number;
  job: {
    name?: string | null;
    executionTtl: number;
    playbook?: string;
    repository?: {
      url: string;
      branch?: string | null;
      defaultPlaybook: string;
      credentials?: {
        username?: string | null;
        password?: string | null;
        sshPrivateKey?: string | null;
      } | null;
    };
    hosts: {
      id: string;
      hostVars?: Record<string, unknown>;
      sshPrivateKey?: string | null;
    }[];
    sshPrivateKey?: string | null;
    properties: Record<string, unknown>;
    playbookTags: string[];
    useDynamicInventory: boolean;
    forks?: number;
  };
  inventory: {
    hosts: {
      id: string;
      groups: string[];
      hostVars: Record<string, unknown>;
    }[];
  } | null;
  limit: string[] | null;
  check: boolean;
  diff: boolean;
  secrets: string[];
  reportEvents?: boolean;
};

export type LeaseRef = {
  attempt: number;
  leaseId: string;
};

export type AgentAnswer = {
  leaseExpiresAt?: number;
  command: "stop" | "kill" | null;
};

export type StatusReport = {
  attempt: number;
  leaseId: string;
  status?: "INITIALIZING" | "RUNNING" | "SUCCESS" | "FAILURE" | "INIT_FAILURE" | "STOPPED" | "KILLED";
  exitCode?: number | null;
  hostStats?: Record<string, HostStats>;
  failedHosts?: string[];
  reason?: string;
  detail?: string;
  repositoryLog?: RepositoryLogReport;
  events?: AgentEvent[];
};

export type HostStats = {
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
  rescued: number;
  ignored: number;
};

export type RepositoryLogReport = {
  commit: string;
  author?: string | null;
  author_email?: string | null;
  date?: number | null;
  message?: string | null;
  branch?: string | null;
};

export type AgentEvent = {
  seq: number;
  timestamp: number;
  event_type: string;
  play?: string | null;
  task?: string | null;
  host?: string | null;
  stdout?: string;
  data?: unknown;
};

export type EventUpload = {
  attempt: number;
  leaseId: string;
  events: AgentEvent[];
};
