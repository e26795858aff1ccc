import { z } from "@hono/zod-openapi";
import { pageSchema } from "./common";

/**
 * Agents ("minions"), their registration tokens and the agent-facing register/lease bodies
 * (docs/agent-protocol.md). Minions are camelCase like jobs.
 */

export const MAX_POLL_WAIT_MS = 25_000;

/** A location names a network the agent sits in; it is matched exactly against a job's `location` / `rnr_location`. */
export const Location = z.string().trim().min(1).max(64);

const label = (max: number) => z.string().trim().max(max);

export const TokenCreateBody = z
  .object({
    name: label(100).nullable().optional(),
    description: label(1000).nullable().optional(),
    location: Location.nullable().optional(),
  })
  .openapi("RegistrationTokenCreate");

export const TokenView = z
  .object({
    id: z.string(),
    name: z.string().nullable(),
    description: z.string().nullable(),
    location: z.string().nullable(),
    createdTime: z.number().int(),
  })
  .openapi("RegistrationToken");
export type TokenView = z.infer<typeof TokenView>;

/** Only the answer to the create carries the token itself: it is never shown again. */
export const CreatedTokenView = TokenView.extend({
  token: z.string(),
  /** What to run on the agent's host: install the agent from this API, then register it (the token by environment). */
  installCommand: z.string().openapi({ example: "npm install -g https://runner.example.com/downloads/runner-agent.tgz" }),
  registerCommand: z.string().openapi({ example: "RUNNER_TOKEN=rrt_… runner-agent register --url https://runner.example.com" }),
}).openapi("CreatedRegistrationToken");
export type CreatedTokenView = z.infer<typeof CreatedTokenView>;

export const AgentView = z
  .object({
    id: z.string(),
    name: z.string(),
    location: z.string().nullable(),
    version: z.string().nullable(),
    hostname: z.string().nullable(),
    concurrency: z.number().int(),
    online: z.boolean(),
    lastSeen: z.number().int().nullable(),
    createdTime: z.number().int(),
    /** Executions this agent holds a lease on now. */
    runningExecutions: z.array(z.string()),
  })
  .openapi("Agent");
export type AgentView = z.infer<typeof AgentView>;

export const AgentPage = pageSchema(AgentView, "AgentPage");
export const TokenPage = pageSchema(TokenView, "RegistrationTokenPage");

export const RegisterBody = z
  .object({
    /** A registration token (`rrt_…`); omitted by a shared-pool agent, which sends an operator JWT as bearer. */
    token: z.string().min(1).max(200).optional(),
    name: label(100).min(1).optional(),
    location: Location.nullable().optional(),
    version: label(64).nullable().optional(),
    hostname: label(255).nullable().optional(),
    concurrency: z.number().int().min(1).max(1000).optional(),
  })
  .openapi("AgentRegister");
export type RegisterBody = z.infer<typeof RegisterBody>;

export const RegisterAnswer = z
  .object({
    agentId: z.string(),
    credential: z.string(),
    accountAlias: z.string().nullable(),
    location: z.string().nullable(),
    shared: z.boolean(),
    leaseTtlMs: z.number().int(),
    heartbeatIntervalMs: z.number().int(),
    pollWaitMs: z.number().int(),
  })
  .openapi("AgentRegistration");
export type RegisterAnswer = z.infer<typeof RegisterAnswer>;

export const LeaseRequest = z
  .object({
    /** Executions the agent is running now (informational). */
    running: z.array(z.string().max(200)).max(1000).optional(),
    capacity: z.number().int().min(0).max(1000).optional(),
    /** The most executions the agent runs at once (`run --concurrency`): kept as the agent's `concurrency` when it differs from the registered one. */
    concurrency: z.number().int().min(1).max(1000).optional(),
    /** How long to hold the poll; longer than MAX_POLL_WAIT_MS is held MAX_POLL_WAIT_MS. */
    waitMs: z.number().int().min(0).optional(),
  })
  .openapi("LeaseRequest");
