// Shapes of the agent protocol (docs/agent-protocol.md), as the agent uses them: named from the
// types generated from the worker's schemas (protocol.ts), never written again here.
import type * as P from "./protocol.ts";

export type AgentCommand = P.AgentAnswer["command"];
export type RegisterAnswer = P.AgentRegistration;

export type Lease = P.Lease;
export type LeaseJob = Lease["job"];
export type LeaseHost = LeaseJob["hosts"][number];
export type LeaseRepository = NonNullable<LeaseJob["repository"]>;
export type InventoryHost = NonNullable<Lease["inventory"]>["hosts"][number];

/** One event as uploaded: the protocol's AgentEvent with every field the agent always sends. */
export type WireEvent = { [K in keyof P.AgentEvent]-?: Exclude<P.AgentEvent[K], undefined> } & { data: Record<string, unknown> };

/** An event before the sink numbers it. */
export type EventInput = Omit<WireEvent, "seq">;

export type ReportedStatus = NonNullable<P.StatusReport["status"]>;
export type TerminalStatus = Exclude<ReportedStatus, "INITIALIZING" | "RUNNING">;

export type HostStats = P.HostStats;
/** The repository log as the agent reads it from git: every field there, only the branch may be null (a detached commit). */
export type RepositoryLog = { [K in keyof P.RepositoryLogReport]-?: K extends "branch" ? string | null : NonNullable<P.RepositoryLogReport[K]> };

/** Names the lease a per-execution call belongs to: the server refuses a stale one (409 abandon). */
export type LeaseRef = P.LeaseRef;

/** A status report without `attempt`/`leaseId` (the session adds them). */
export type StatusReport = Omit<P.StatusReport, keyof LeaseRef | "repositoryLog" | "events"> & { repositoryLog?: RepositoryLog; events?: WireEvent[] };

export const TERMINAL: ReadonlySet<string> = new Set(["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"]);
