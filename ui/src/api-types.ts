// The public API's answers as the dashboard (ui/) reads them, generated from the worker's zod schemas
// (GET /openapi.json) by test/static/protocol.test.ts: do not edit; `npm run protocol` writes it.

export type LoginAnswer = {
  userName: string;
  accountAlias: string;
  roles: ("admin" | "user" | "viewer")[];
  bearerToken: string;
  accessToken: string;
  tokenType: "Bearer";
  expiresIn: number;
};

export type Job = {
  id: string;
  accountAlias: string;
  name: string | null;
  description: string | null;
  executionTtl: number;
  callbacks: {
    url: string;
    level: "DEBUG" | "ERROR" | "RESULT";
  }[];
  playbook: string | null;
  repository: Repository;
  playbookTags: string[];
  hosts: Host[];
  properties: Record<string, unknown>;
  hasSshPrivateKey: boolean;
  useDynamicInventory: boolean;
  location: string | null;
  forks: number | null;
  status: "ACTIVE";
  createdTime: number;
  lastUpdatedTime: number;
  links: {
    self: string;
    executions: string;
    start: string;
    schedules: string;
  };
};

export type Repository = {
  url: string;
  branch: string | null;
  defaultPlaybook: string;
  credentials: RepositoryCredentialsView;
} | null;

export type RepositoryCredentialsView = {
  username: string | null;
  hasPassword: boolean;
  hasSshPrivateKey: boolean;
} | null;

export type Host = {
  id: string;
  hostVars: Record<string, unknown>;
  hasSshPrivateKey: boolean;
};

export type JobPage = {
  totalSize: number;
  page: number;
  size: number;
  results: Job[];
};

export type JobWithExecution = Job & {
  execution?: Record<string, unknown>;
};

export type Execution = {
  execution_id: string;
  job_id: string;
  account_alias: string;
  status: ExecutionStatus;
  timers: {
    start: number;
    end: number | null;
  }[];
  failed_hosts: string[];
  host_stats: Record<string, HostStats>;
  repository_log: RepositoryLog;
  is_vpn_established: boolean;
  agent_id: string | null;
  agent_unreachable_since: number | null;
  trigger: "api" | "schedule" | "restart";
  schedule_id: string | null;
  scheduled_time?: number | null;
  reason: string | null;
  waiting_reason: string | null;
  attempt: number;
  created_time: number;
  links: {
    self: string;
    job: string;
    events: string;
    log: string;
  };
};

export type ExecutionStatus = "PENDING" | "INITIALIZING" | "RUNNING" | "SUCCESS" | "FAILURE" | "INIT_FAILURE" | "STOPPING" | "STOPPED" | "KILLING" | "KILLED";

export type HostStats = {
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
  rescued: number;
  ignored: number;
};

export type RepositoryLog = {
  commit: string;
  author?: string | null;
  author_email?: string | null;
  date?: number | null;
  message?: string | null;
  branch?: string | null;
} | null;

export type ExecutionPage = {
  totalSize: number;
  page: number;
  size: number;
  results: Execution[];
};

export type StatusEvent = {
  id: string;
  sequence: number;
  timestamp: number;
  event_type: string;
  job_id: string;
  execution_id: string;
  account_alias: string;
  host: string | null;
  task: string | null;
  play: string | null;
  message: string;
  data?: unknown;
  notifications: Record<string, string | number | boolean | null>[];
};

export type StatusEventPage = {
  totalSize: number;
  page: number;
  size: number;
  results: StatusEvent[];
};

export type Schedule = {
  id: string;
  scheduleId: string;
  jobId: string;
  accountAlias: string;
  description: string;
  trigger: ScheduleTrigger;
  timezone: string;
  enabled: boolean;
  serviceAccountAlias: string;
  nextRunTime: number | null;
  lastRunTime: number | null;
  lastRunDelayMs: number | null;
  lastExecutionId: string | null;
  lastError: string | null;
  createdTime: number;
  lastUpdatedTime: number;
  links: {
    self: string;
    job: string;
    executions: string;
  };
};

export type ScheduleTrigger = {
  type: "cron" | "date";
  expression: string;
};

export type SchedulePage = {
  totalSize: number;
  page: number;
  size: number;
  results: Schedule[];
};

export type Agent = {
  id: string;
  name: string;
  location: string | null;
  version: string | null;
  hostname: string | null;
  concurrency: number;
  online: boolean;
  lastSeen: number | null;
  createdTime: number;
  runningExecutions: string[];
};

export type AgentPage = {
  totalSize: number;
  page: number;
  size: number;
  results: Agent[];
};

export type RegistrationToken = {
  id: string;
  name: string | null;
  description: string | null;
  location: string | null;
  createdTime: number;
};

export type RegistrationTokenPage = {
  totalSize: number;
  page: number;
  size: number;
  results: RegistrationToken[];
};

export type CreatedRegistrationToken = RegistrationToken & {
  token: string;
  installCommand: string;
  registerCommand: string;
};

export type Inventory = {
  hosts: InventoryHost[];
};

export type InventoryHost = {
  id: string;
  groups?: string[] | null;
  hostVars?: Record<string, unknown> | null;
};

export type ServiceAccount = {
  id: string;
  accountAlias: string;
  alias: string;
  username: string;
  role: "admin" | "user" | "viewer";
  createdTime: number;
  lastUpdatedTime: number;
};

export type ServiceAccountList = {
  accounts: string[];
  totalSize: number;
  page: number;
  size: number;
  results: ServiceAccount[];
};

export type Delivery = {
  delivery_id: string;
  execution_id: string;
  job_id: string;
  account_alias: string;
  url: string;
  level: "DEBUG" | "ERROR" | "RESULT";
  event_type: string;
  event_sequence: number;
  sequence: number;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  last_response_code: number | null;
  last_error: string | null;
  created_time: number;
  updated_time: number;
  delivered_time: number | null;
};

export type DeliveryPage = {
  totalSize: number;
  page: number;
  size: number;
  results: Delivery[];
};
