/**
 * The state machine of an execution (docs/DESIGN.md, "State machine"): what makes a status change,
 * THE transition table, and the reason a change records. Pure: the Execution object's `apply` is
 * the one place that consults it and changes a status.
 */
import { LEASED_STATUSES, type ExecutionStatus, type StatusReport } from "../schemas/execution";

/** What makes a status change. User actions, agent reports, the clock and the dispatcher. */
export type Cause =
  | "lease" // the dispatcher hands the execution to an agent
  | "unleasable" // the job vanished, or its secrets cannot be read, before it could be leased
  | "initializing" // agent: INITIALIZING (a no-op confirmation)
  | "running" // agent: the playbook started
  | "succeeded" // agent: SUCCESS
  | "failed" // agent: FAILURE
  | "init_failed" // agent: INIT_FAILURE
  | "stopped" // agent: STOPPED
  | "killed" // agent: KILLED
  | "stop" // user: graceful stop
  | "kill" // user: kill
  | "restart" // user: run a failed execution again
  | "ttl" // clock: executionTtl ran out
  | "escalate" // clock: a stop did not finish in time
  | "kill_timeout" // clock: the agent never confirmed a kill
  | "lease_lost" // clock or revocation: no heartbeat within the lease
  | "release" // agent: hands back an execution it is not running
  | "pending_timeout"; // clock: no agent leased it within the account's pending timeout

/**
 * THE transition table: for each cause, the states it is allowed in and the state it leads to.
 * A (cause, state) pair that is not listed is forbidden (409). `{ to, onlyIfNotStarted }` rows
 * apply only while the playbook has not started in this lease.
 */
type Target = ExecutionStatus | { to: ExecutionStatus; onlyIfNotStarted: true };
export const TRANSITIONS: Record<Cause, Partial<Record<ExecutionStatus, Target>>> = {
  lease: { PENDING: "INITIALIZING" },
  unleasable: { PENDING: "INIT_FAILURE" },
  initializing: { INITIALIZING: "INITIALIZING", STOPPING: "STOPPING", KILLING: "KILLING" },
  running: { INITIALIZING: "RUNNING", RUNNING: "RUNNING", STOPPING: "STOPPING", KILLING: "KILLING" },
  // A run may end on its own just before a stop or kill reaches it: the real outcome wins.
  succeeded: { RUNNING: "SUCCESS", STOPPING: "SUCCESS", KILLING: "SUCCESS" },
  failed: { RUNNING: "FAILURE", STOPPING: "FAILURE", KILLING: "FAILURE" },
  init_failed: { INITIALIZING: "INIT_FAILURE", STOPPING: "INIT_FAILURE", KILLING: "INIT_FAILURE" },
  // An agent stops or kills on its own too (SIGTERM, its local TTL backstop).
  stopped: { INITIALIZING: "STOPPED", RUNNING: "STOPPED", STOPPING: "STOPPED", KILLING: "STOPPED" },
  killed: { INITIALIZING: "KILLED", RUNNING: "KILLED", STOPPING: "KILLED", KILLING: "KILLED" },
  stop: { PENDING: "STOPPED", INITIALIZING: "STOPPING", RUNNING: "STOPPING", STOPPING: "STOPPING" },
  kill: { PENDING: "KILLED", INITIALIZING: "KILLING", RUNNING: "KILLING", STOPPING: "KILLING", KILLING: "KILLING" },
  restart: { FAILURE: "PENDING", INIT_FAILURE: "PENDING" },
  ttl: { PENDING: "STOPPED", INITIALIZING: "STOPPING", RUNNING: "STOPPING", STOPPING: "STOPPING", KILLING: "KILLING" },
  escalate: { STOPPING: "KILLING" },
  kill_timeout: { KILLING: "KILLED" },
  lease_lost: { INITIALIZING: "PENDING", RUNNING: "FAILURE", STOPPING: "STOPPED", KILLING: "KILLED" },
  release: { INITIALIZING: "PENDING", STOPPING: { to: "STOPPED", onlyIfNotStarted: true }, KILLING: "KILLED" },
  // Nothing ran, so it is a failure to initialize, and a restart may try again.
  pending_timeout: { PENDING: "INIT_FAILURE" },
};

export const TERMINAL: ReadonlySet<ExecutionStatus> = new Set(["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"]);
/** States in which an agent holds the lease. */
export const LEASED: ReadonlySet<ExecutionStatus> = new Set(LEASED_STATUSES);

/** Where `cause` leads from `status`; null when the table forbids it. */
export function target(cause: Cause, status: ExecutionStatus, started: boolean): ExecutionStatus | null {
  const t = TRANSITIONS[cause][status];
  if (t === undefined) return null;
  if (typeof t === "string") return t;
  return started ? null : t.to;
}

/** The cause of an agent's status report. */
export const REPORT_CAUSE: Record<NonNullable<StatusReport["status"]>, Cause> = {
  INITIALIZING: "initializing",
  RUNNING: "running",
  SUCCESS: "succeeded",
  FAILURE: "failed",
  INIT_FAILURE: "init_failed",
  STOPPED: "stopped",
  KILLED: "killed",
};

/** How a refusal names what was tried. */
export const CAUSE_VERB: Record<Cause, string> = {
  lease: "lease",
  unleasable: "lease",
  initializing: "report INITIALIZING",
  running: "report RUNNING",
  succeeded: "report SUCCESS",
  failed: "report FAILURE",
  init_failed: "report INIT_FAILURE",
  stopped: "report STOPPED",
  killed: "report KILLED",
  stop: "stop",
  kill: "kill",
  restart: "restart",
  ttl: "expire",
  escalate: "escalate",
  kill_timeout: "end an unconfirmed kill",
  lease_lost: "lose the lease",
  release: "release",
  pending_timeout: "give up waiting for an agent",
};

/**
 * The reason shown for STOPPING/KILLING and terminal states; null for the others. `previous` is
 * the reason recorded before this change, `given` the one the agent or caller named.
 */
export function reasonFor(cause: Cause, to: ExecutionStatus, from: ExecutionStatus, previous: string | null, given: string | undefined): string | null {
  if (to === "PENDING" || to === "INITIALIZING" || to === "RUNNING" || to === "SUCCESS") return null;
  // Whatever put it into STOPPING/KILLING names the end too (a TTL stop ends ttl_expired).
  const pending = from === "STOPPING" || from === "KILLING" ? previous : null;
  switch (cause) {
    case "stop":
      return "stopped";
    case "kill":
      return "killed";
    case "ttl":
      return "ttl_expired";
    case "escalate":
      return previous === "ttl_expired" ? "ttl_expired" : "stop_expired";
    case "kill_timeout":
      return "kill_unconfirmed";
    case "lease_lost":
      return given ?? "agent_lost";
    case "unleasable":
      return given ?? "job_not_found";
    case "pending_timeout":
      return "no_agent";
    case "failed":
      return given ?? "playbook_failed";
    case "init_failed":
      return given ?? "init_failed";
    case "stopped":
    case "killed":
    case "release":
      return pending ?? given ?? (cause === "killed" ? "killed" : "stopped");
    default:
      return given ?? null;
  }
}
