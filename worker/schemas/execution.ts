import { z } from "@hono/zod-openapi";
import { jsonDepth, jsonObject, pageSchema, pathParam } from "./common";
import { HostId, isObject, JobParams, MAX_PLAYBOOK_TAGS, PlaybookTag } from "./job";

/**
 * The execution entity and the agent-facing bodies around it. Executions and status events are
 * snake_case on the wire (the original service's shape); agent bodies follow docs/agent-protocol.md.
 */

export const EXECUTION_STATUSES = [
  "PENDING",
  "INITIALIZING",
  "RUNNING",
  "SUCCESS",
  "FAILURE",
  "INIT_FAILURE",
  "STOPPING",
  "STOPPED",
  "KILLING",
  "KILLED",
] as const;
export const ExecutionStatus = z.enum(EXECUTION_STATUSES).openapi("ExecutionStatus");
export type ExecutionStatus = z.infer<typeof ExecutionStatus>;
/** States in which an agent holds the lease (the Execution object's state machine decides them). */
export const LEASED_STATUSES = ["INITIALIZING", "RUNNING", "STOPPING", "KILLING"] as const satisfies readonly ExecutionStatus[];
/** Not ended: queued or leased. */
export const ACTIVE_STATUSES = ["PENDING", ...LEASED_STATUSES] as const satisfies readonly ExecutionStatus[];

export const HostStats = z
  .object({
    ok: z.number().int().min(0),
    changed: z.number().int().min(0),
    failed: z.number().int().min(0),
    skipped: z.number().int().min(0),
    unreachable: z.number().int().min(0),
    rescued: z.number().int().min(0),
    ignored: z.number().int().min(0),
  })
  .openapi("HostStats");
export type HostStats = z.infer<typeof HostStats>;

const shortText = (max: number) => z.string().max(max);

export const RepositoryLog = z
  .object({
    commit: shortText(200),
    author: shortText(500).nullable().optional(),
    author_email: shortText(500).nullable().optional(),
    date: z.number().int().nullable().optional(),
    message: shortText(10_000).nullable().optional(),
    branch: shortText(500).nullable().optional(),
  })
  .openapi("RepositoryLog");
export type RepositoryLog = z.infer<typeof RepositoryLog>;

/** Text cut to `max` characters (a long commit message is shortened, not refused). */
const clipped = (max: number) => z.string().transform((v) => (v.length > max ? `${v.slice(0, max - 1)}…` : v));

/** The repository log as an agent reports it: the same fields, cut to the sizes above. */
const RepositoryLogReport = z
  .object({
    commit: clipped(200),
    author: clipped(500).nullable().optional(),
    author_email: clipped(500).nullable().optional(),
    date: z.number().int().nullable().optional(),
    message: clipped(10_000).nullable().optional(),
    branch: clipped(500).nullable().optional(),
  })
  .openapi("RepositoryLogReport");

/** A reason as a lower_snake_case code of at most 64 characters; undefined when nothing is left of it. */
function reasonCode(v: string): string | undefined {
  const code = v
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/^[^a-z]+/, "")
    .slice(0, 64)
    .replace(/_+$/, "");
  return code || undefined;
}

export const ExecutionView = z
  .object({
    execution_id: z.string(),
    job_id: z.string(),
    account_alias: z.string(),
    status: ExecutionStatus,
    timers: z.array(z.object({ start: z.number().int(), end: z.number().int().nullable() })),
    failed_hosts: z.array(z.string()),
    host_stats: z.record(z.string(), HostStats),
    repository_log: RepositoryLog.nullable(),
    is_vpn_established: z.boolean(),
    agent_id: z.string().nullable(),
    /**
     * While the agent holding the execution has not called for more than two heartbeat intervals:
     * when it last did (epoch ms). The execution stays as it is until the lost-agent window
     * (LOST_AGENT_WINDOW_SECONDS) has passed since then. Null while its heartbeats come.
     */
    agent_unreachable_since: z.number().int().nullable().openapi({
      description:
        "While the agent holding the execution has not called for more than two heartbeat intervals: when it last did (epoch ms). The execution stays as it is until the lost-agent window has passed since then, then ends FAILURE agent_lost (PENDING again if its playbook had not started). Null while its heartbeats come.",
    }),
    trigger: z.enum(["api", "schedule", "restart"]),
    schedule_id: z.string().nullable(),
    /** The schedule's slot a schedule-started execution fired for: `created_time` minus this is how late it started. */
    scheduled_time: z.number().int().nullable().optional(),
    reason: z.string().nullable(),
    waiting_reason: z.string().nullable().openapi({
      description:
        "While PENDING, why it waits: no agent registered or online for its queue (with when one was last seen), the account's concurrency limit, or its place in the queue. Null in every other state.",
    }),
    attempt: z.number().int(),
    created_time: z.number().int(),
    links: z.object({ self: z.string(), job: z.string(), events: z.string(), log: z.string() }),
  })
  .openapi("Execution");
export type ExecutionView = z.infer<typeof ExecutionView>;

export const StatusEvent = z
  .object({
    id: z.string(),
    sequence: z.number().int(),
    timestamp: z.number().int(),
    event_type: z.string(),
    job_id: z.string(),
    execution_id: z.string(),
    account_alias: z.string(),
    host: z.string().nullable(),
    task: z.string().nullable(),
    play: z.string().nullable(),
    message: z.string(),
    data: z.unknown().nullable(),
    /** Webhook deliveries the event caused (filled by the callbacks side; [] until then). */
    notifications: z.array(z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))),
  })
  .openapi("StatusEvent");
export type StatusEvent = z.infer<typeof StatusEvent>;

/** `/{alias}/{jobId}/executions/{executionId}` (and the status service's path of the same three) */
export const ExecutionParams = JobParams.extend({ executionId: pathParam("executionId") });

export const ExecutionPage = pageSchema(ExecutionView, "ExecutionPage");
export const StatusEventPage = pageSchema(StatusEvent, "StatusEventPage");

// ---- user bodies --------------------------------------------------------------------------

const secretText = z
  .string()
  .min(1)
  .max(64 * 1024);

/** Host ids and tags follow the job's own rules: what reaches the agent at start is as safe as what was saved. */
export const StartBody = z
  .object({
    hosts: z
      .array(z.object({ id: HostId, sshPrivateKey: secretText.nullable().optional() }))
      .max(10_000)
      .superRefine((hosts, ctx) => {
        const seen = new Set<string>();
        hosts.forEach((h, i) => {
          if (seen.has(h.id)) ctx.addIssue({ code: "custom", path: [i, "id"], message: "duplicates an earlier host id" });
          seen.add(h.id);
        });
      })
      .optional(),
    sshPrivateKey: secretText.nullable().optional(),
    properties: jsonObject("properties").optional(),
    playbookTags: z
      .array(PlaybookTag)
      .max(MAX_PLAYBOOK_TAGS, { message: `must have at most ${MAX_PLAYBOOK_TAGS} tags` })
      .optional(),
    check: z.boolean().optional(),
    diff: z.boolean().optional(),
  })
  .openapi("StartExecution");
export type StartBody = z.infer<typeof StartBody>;

export const RestartBody = StartBody.pick({ hosts: true, sshPrivateKey: true }).openapi("RestartExecution");

export const StopBody = z
  .object({
    /** Seconds before a graceful stop escalates to a kill; 0 (or absent) never escalates on its own. */
    expiryDuration: z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 3600)
      .optional(),
  })
  .openapi("StopExecution");

// ---- agent bodies (docs/agent-protocol.md) ---------------------------------------------------

export const AGENT_REPORTABLE = ["INITIALIZING", "RUNNING", "SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"] as const;

/**
 * `attempt` and `leaseId` name the lease a call belongs to; a stale one is answered 409 "abandon".
 * The lease id matters on its own: the same agent may be handed the same attempt twice (a lease
 * lost before the playbook started goes back to PENDING), and the first lease's calls must not count.
 */
const leaseRef = {
  attempt: z.number().int().min(1),
  leaseId: z.string().min(1).max(100),
};

/**
 * Per-host values keyed by host name. Not z.record: it assigns keys onto a plain object, so a host
 * named `__proto__` would silently vanish (or worse); every key here stays an own property.
 */
function byHost<T extends z.ZodType>(value: T) {
  return z
    .unknown()
    .transform((v, ctx) => {
      if (!isObject(v)) {
        ctx.addIssue({ code: "custom", message: "must be an object keyed by host name" });
        return z.NEVER;
      }
      const out: [string, z.output<T>][] = [];
      for (const [host, x] of Object.entries(v)) {
        const r = value.safeParse(x);
        if (r.success) out.push([host, r.data]);
        else for (const i of r.error.issues) ctx.addIssue({ code: "custom", path: [host, ...i.path], message: i.message });
      }
      return Object.fromEntries(out) as Record<string, z.output<T>>;
    })
    .openapi({ type: "object", additionalProperties: { $ref: "#/components/schemas/HostStats" } });
}

const MAX_EVENT_DATA_DEPTH = 128;
const EVENT_TYPE_RE = /^[a-z][a-z0-9_]{0,63}$/;

export const AgentEvent = z
  .object({
    seq: z.number().int().min(1),
    timestamp: z.number().int().min(0),
    event_type: z.string().regex(EVENT_TYPE_RE, "must be an Ansible callback name"),
    play: z.string().max(1024).nullable().optional(),
    task: z.string().max(1024).nullable().optional(),
    host: z.string().max(255).nullable().optional(),
    stdout: z
      .string()
      .max(1024 * 1024)
      .optional(),
    /** Ansible's result: nests deeper than extra vars may (registered API answers), but not without bound. */
    data: z
      .unknown()
      .refine((v) => jsonDepth(v, MAX_EVENT_DATA_DEPTH) <= MAX_EVENT_DATA_DEPTH, { message: `must nest at most ${MAX_EVENT_DATA_DEPTH} levels` })
      .optional(),
  })
  .openapi("AgentEvent");
export type AgentEvent = z.infer<typeof AgentEvent>;

export const MAX_EVENTS_PER_BATCH = 2000;
const optionalText = (v: unknown, max: number) => v === undefined || v === null || (typeof v === "string" && v.length <= max);

/**
 * Whether `e` passes `AgentEvent`, checked by hand: an upload carries up to 2,000 events, and
 * zod's parse of each (a checked copy of every field) was most of what validating a batch cost.
 * It is never more lenient than the schema: an event it refuses is parsed by the schema, whose
 * issues are the answer (the same 400 naming the same fields as before).
 */
export function isAgentEvent(e: unknown): boolean {
  if (typeof e !== "object" || e === null || Array.isArray(e)) return false;
  const v = e as Record<string, unknown>;
  return (
    Number.isSafeInteger(v.seq) &&
    (v.seq as number) >= 1 &&
    Number.isSafeInteger(v.timestamp) &&
    (v.timestamp as number) >= 0 &&
    typeof v.event_type === "string" &&
    EVENT_TYPE_RE.test(v.event_type) &&
    optionalText(v.play, 1024) &&
    optionalText(v.task, 1024) &&
    optionalText(v.host, 255) &&
    (v.stdout === undefined || (typeof v.stdout === "string" && v.stdout.length <= 1024 * 1024)) &&
    (typeof v.data !== "object" || v.data === null || jsonDepth(v.data, MAX_EVENT_DATA_DEPTH) <= MAX_EVENT_DATA_DEPTH)
  );
}

/** The batch's events: `isAgentEvent` for each, the schema's issues for those it refuses. */
const AgentEvents = z
  .array(z.unknown())
  .max(MAX_EVENTS_PER_BATCH)
  .superRefine((events, ctx) => {
    events.forEach((e, i) => {
      if (isAgentEvent(e)) return;
      const r = AgentEvent.safeParse(e);
      if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: "custom", path: [i, ...issue.path], message: issue.message });
    });
  })
  .openapi({ type: "array", items: { $ref: "#/components/schemas/AgentEvent" }, maxItems: MAX_EVENTS_PER_BATCH }) as unknown as z.ZodType<AgentEvent[]>;

export const EventUpload = z.object({ ...leaseRef, events: AgentEvents }).openapi("EventUpload");
export type EventUpload = z.infer<typeof EventUpload>;

/**
 * A status report is refused (400) only when it is structurally wrong. Its values come from the
 * playbook (host names added at run time, commit messages, error text), and a refused terminal
 * report would lose the run's outcome: unusual values are kept, or cut down, never refused.
 */
export const StatusReport = z
  .object({
    ...leaseRef,
    status: z.enum(AGENT_REPORTABLE).optional(),
    exitCode: z.number().int().nullable().optional(),
    hostStats: byHost(HostStats).optional(),
    failedHosts: z.array(z.string()).optional(),
    /** A lower_snake_case code; anything else is made one (or dropped), not refused. */
    reason: z
      .string()
      .transform((v) => reasonCode(v))
      .optional(),
    /** Shown in the status event (cut to 4000 characters there). */
    detail: z.string().optional(),
    repositoryLog: RepositoryLogReport.optional(),
    /**
     * The run's last events, stored before the status applies (as an upload stores them), so that
     * an agent sends its tail and the final status in one call (the lease's `reportEvents`).
     */
    events: AgentEvents.optional(),
  })
  .refine((b) => b.status !== undefined || b.repositoryLog !== undefined, {
    message: "a report carries a status, a repositoryLog, or both",
    path: ["status"],
  })
  .refine((b) => b.events === undefined || b.status !== undefined, { message: "events go with a status", path: ["events"] })
  .openapi("StatusReport");
export type StatusReport = z.infer<typeof StatusReport>;

/** The body of heartbeat and release: which lease the call belongs to. */
export const LeaseRef = z.object(leaseRef).openapi("LeaseRef");
export type LeaseRef = z.infer<typeof LeaseRef>;

/**
 * Any JSON value. Typed `{} | null` rather than `unknown` so that a lease keeps its type across
 * Workers RPC (the RPC typings turn an object holding `unknown` into `never`).
 */
// biome-ignore lint/complexity/noBannedTypes: `{}` is what keeps the type across RPC (see above)
export type JsonField = {} | null;
const jsonRecord = () => z.record(z.string(), z.unknown()) as unknown as z.ZodType<Record<string, JsonField>>;

export const LeaseBody = z
  .object({
    executionId: z.string(),
    attempt: z.number().int(),
    leaseId: z.string(),
    accountAlias: z.string(),
    jobId: z.string(),
    leaseExpiresAt: z.number().int(),
    heartbeatIntervalMs: z.number().int(),
    deadline: z.number().int(),
    job: z.object({
      name: z.string().nullable().optional(),
      executionTtl: z.number().int(),
      playbook: z.string().optional(),
      repository: z
        .object({
          url: z.string(),
          branch: z.string().nullable().optional(),
          defaultPlaybook: z.string(),
          credentials: z
            .object({
              username: z.string().nullable().optional(),
              password: z.string().nullable().optional(),
              sshPrivateKey: z.string().nullable().optional(),
            })
            .nullable()
            .optional(),
        })
        .optional(),
      hosts: z.array(
        z.object({
          id: z.string(),
          hostVars: jsonRecord().optional(),
          sshPrivateKey: z.string().nullable().optional(),
        }),
      ),
      sshPrivateKey: z.string().nullable().optional(),
      properties: jsonRecord(),
      playbookTags: z.array(z.string()),
      useDynamicInventory: z.boolean(),
      forks: z.number().int().optional().openapi({ description: "ansible-playbook --forks; absent: Ansible's default." }),
    }),
    inventory: z
      .object({
        hosts: z.array(z.object({ id: z.string(), groups: z.array(z.string()), hostVars: jsonRecord() })),
      })
      .nullable(),
    limit: z.array(z.string()).nullable(),
    check: z.boolean(),
    diff: z.boolean(),
    secrets: z.array(z.string()),
    reportEvents: z
      .boolean()
      .optional()
      .openapi({ description: "The status report takes `events`: the agent may send its last events with the final status in one call." }),
  })
  .openapi("Lease");
export type LeaseBody = z.infer<typeof LeaseBody>;

/** Answer to heartbeat/status/events/release: the lease's new expiry and a pending command. */
export const AgentAnswerSchema = z.object({ leaseExpiresAt: z.number().int().optional(), command: z.enum(["stop", "kill"]).nullable() }).openapi("AgentAnswer");
export type AgentAnswer = z.infer<typeof AgentAnswerSchema>;
