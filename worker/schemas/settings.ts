import { z } from "@hono/zod-openapi";

/**
 * The account's settings (`GET/PUT /accounts/{alias}/settings`). One schema for the PUT body and
 * the answer: the answer has every member; a PUT may leave any out to keep its current value, and
 * `accountAlias` (read-only) is accepted and ignored, so a client can PUT back what it read.
 */

export const DEFAULT_PENDING_TIMEOUT_MINUTES = 60;
/** A week: beyond that a PENDING execution is forgotten work, whatever its TTL says. */
export const MAX_PENDING_TIMEOUT_MINUTES = 7 * 24 * 60;

export const AccountSettings = z
  .object({
    accountAlias: z.string().optional().openapi({ description: "Read-only: the account (ignored in a PUT)." }),
    pendingTimeoutMinutes: z
      .number({ message: "must be a whole number of minutes" })
      .int({ message: "must be a whole number of minutes" })
      .min(1, { message: "must be at least 1" })
      .max(MAX_PENDING_TIMEOUT_MINUTES, { message: `must be at most ${MAX_PENDING_TIMEOUT_MINUTES} (a week)` })
      .optional()
      .openapi({
        description: `A PENDING execution no agent has leased after this long ends INIT_FAILURE with reason no_agent. Default ${DEFAULT_PENDING_TIMEOUT_MINUTES}.`,
      }),
    sharedPoolFallback: z
      .boolean({ message: "must be true or false" })
      .optional()
      .openapi({
        description:
          "Whether the account's location-less jobs may run on the shared pool while none of its own default-location agents is online. " +
          "Default false: once an account has registered agents, its jobs (and their secrets) stay on its own network. " +
          "An account with no agents registered at all always uses the shared pool.",
      }),
  })
  .openapi("AccountSettings");
export type AccountSettingsBody = z.infer<typeof AccountSettings>;

/** The settings as stored and answered: every member present. */
export interface Settings {
  accountAlias: string;
  pendingTimeoutMinutes: number;
  sharedPoolFallback: boolean;
}
