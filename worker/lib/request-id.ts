import { tryGetContext } from "hono/context-storage";

/**
 * The request id: every answer carries it in `Runner-Request-Id`, the request's log line and
 * problem+json body name it, and audit rows keep it, so one id finds all four.
 *
 * A well-formed id the client sent is kept (a CLI, a CI job or a proxy in front can then find its
 * own request in our log by the id it already logged); anything else is replaced by a UUID. The
 * id only labels lines, it grants nothing, so a client choosing its own can at worst confuse its
 * own search; the charset keeps it a plain token in logs and headers.
 */
export const REQUEST_ID_HEADER = "Runner-Request-Id";
export type RequestVars = { requestId: string };

const WELL_FORMED = /^[A-Za-z0-9._:-]{8,128}$/;

/** The client's id if well-formed, else a new one. */
export function requestIdFrom(sent: string | undefined): string {
  return sent !== undefined && WELL_FORMED.test(sent) ? sent : crypto.randomUUID();
}

/**
 * The id of the request being served, or null outside one (a Durable Object, the cron). Read from
 * the request's context (hono/context-storage, mounted in worker/app.ts), so that code with no
 * context in hand (a problem+json body built anywhere) still names it.
 */
export function currentRequestId(): string | null {
  return tryGetContext<{ Variables: RequestVars }>()?.var.requestId ?? null;
}
