import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { log } from "./log";
import { currentRequestId } from "./request-id";
import { SecretsError } from "./secrets";

/** One offending input: `field` is a dotted path into the body/query (e.g. `hosts.1.id`). */
export interface FieldError {
  field: string;
  message: string;
}

/** Extra problem members (RFC 9457 extensions): plain values, so they cross RPC as they are. */
export type Extensions = Record<string, string | number | boolean | null>;

/** What a problem is made of: RFC 9457 members, extra headers, extensions. Plain data, so it crosses RPC as it is. */
export interface ProblemData {
  status: number;
  title: string;
  detail?: string;
  errors?: FieldError[];
  headers?: Record<string, string>;
  /** Extra problem members (RFC 9457 extensions), e.g. `command: "abandon"` for agents. */
  extensions?: Extensions;
}

/** The one error type of the API; `onError` turns it into RFC 9457 problem+json. */
export class ProblemError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail?: string;
  readonly errors?: FieldError[];
  readonly headers?: Record<string, string>;
  readonly extensions?: Extensions;

  constructor(p: ProblemData) {
    super(p.detail ?? p.title);
    this.status = p.status;
    this.title = p.title;
    this.detail = p.detail;
    this.errors = p.errors;
    this.headers = p.headers;
    this.extensions = p.extensions;
  }

  /** The problem as plain data (what crosses Durable Object RPC). */
  toData(): ProblemData {
    const { status, title, detail, errors, headers, extensions } = this;
    return { status, title, detail, errors, headers, extensions };
  }
}

/**
 * What a Durable Object method that may refuse (404, 409, …) answers over RPC, instead of throwing.
 * A refusal is an answer, not a failure: thrown across RPC it would lose its class, and the test
 * pool's Durable Object wrapper reports every rejected RPC call as an uncaught rejection
 * (cloudflare/workers-sdk#14736) even when the caller handles it. Unexpected errors still throw.
 */
export type Outcome<T> = { ok: true; value: T } | { ok: false; problem: ProblemData };

/** Runs `fn` inside the object: its value, or the ProblemError it threw, as an Outcome. */
export async function outcome<T>(fn: () => T | Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (!(e instanceof ProblemError)) throw e;
    return { ok: false, problem: e.toData() };
  }
}

/** The caller's side: the value, or the refusal thrown again as the ProblemError it was. */
export function settle<T>(o: Outcome<T>): T {
  if (o.ok) return o.value;
  throw new ProblemError(o.problem);
}

export const badRequest = (errors: FieldError[], detail = "The request is invalid; see errors.") =>
  new ProblemError({ status: 400, title: "Bad Request", detail, errors });
/**
 * 401 with the RFC 6750 challenge. A request without credentials gets a bare challenge
 * (`missingToken`); a bad token gets `error="invalid_token"`.
 */
export const unauthorized = (detail: string, missingToken = false) =>
  new ProblemError({
    status: 401,
    title: "Unauthorized",
    detail,
    headers: {
      "WWW-Authenticate": missingToken
        ? `Bearer realm="runner"`
        : `Bearer realm="runner", error="invalid_token", error_description="${detail.replace(/["\\]/g, "'")}"`,
    },
  });
export const forbidden = (detail: string) => new ProblemError({ status: 403, title: "Forbidden", detail });
export const notFound = (detail = "Not found.") => new ProblemError({ status: 404, title: "Not Found", detail });
export const conflict = (detail: string, errors?: FieldError[]) => new ProblemError({ status: 409, title: "Conflict", detail, errors });
/** 429 with `Retry-After` in whole seconds (at least 1). */
export const tooManyRequests = (detail: string, retryAfterSeconds: number) =>
  new ProblemError({ status: 429, title: "Too Many Requests", detail, headers: { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) } });

/** The RFC 9457 body, for /openapi.json. */
export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    requestId: z.string().optional().openapi({ description: "The request's id, as in the Runner-Request-Id header: quote it when reporting a problem." }),
  })
  .openapi("Problem");

/** The problem+json responses of a route, for createRoute's `responses`. */
export function problemResponses(...statuses: number[]) {
  const text: Record<number, string> = {
    400: "Invalid input: `errors` names every offending field",
    401: "Missing or invalid bearer token",
    403: "The token's role may not do this",
    404: "No such resource in this account",
    409: "The resource's state forbids this",
    413: "The body is larger than 1 MiB",
    415: "The body is not application/json",
    429: "Too many attempts: wait for the seconds `Retry-After` names",
  };
  return Object.fromEntries(statuses.map((s) => [s, { description: text[s] ?? "Error", content: { "application/problem+json": { schema: ProblemSchema } } }]));
}

const TYPE_BASE = "https://runner.dev/problems/";

/**
 * The RFC 9457 body. `requestId` (an extension member) is the id of the request being answered,
 * read from its context wherever the problem is built (worker/lib/request-id.ts), so every
 * problem+json body names it: one id to quote finds the request's log line and audit rows.
 */
export function problemBody(p: ProblemData) {
  const requestId = currentRequestId();
  return {
    ...p.extensions,
    type: `${TYPE_BASE}${p.title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`,
    title: p.title,
    status: p.status,
    detail: p.detail ?? p.title,
    ...(p.errors?.length ? { errors: p.errors } : {}),
    ...(requestId ? { requestId } : {}),
  };
}

export function problemResponse(p: ProblemData): Response {
  return new Response(JSON.stringify(problemBody(p)), {
    status: p.status,
    headers: { "content-type": "application/problem+json", ...p.headers },
  });
}

const invalidJson = (): ProblemData => ({
  status: 400,
  title: "Bad Request",
  detail: "The body is not valid JSON.",
  errors: [{ field: "body", message: "is not valid JSON" }],
});
const internal = (detail = "Something went wrong on our side."): ProblemData => ({ status: 500, title: "Internal Server Error", detail });

/** The single error mapper: known errors keep their status, anything else is a 500 without internals. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof ProblemError) return problemResponse(err.toData());
  if (err instanceof HTTPException) {
    const status = err.status;
    // Hono's validators throw a 400 for a body that does not parse as JSON.
    if (status === 400) return problemResponse(invalidJson());
    if (status === 415) return problemResponse({ status, title: "Unsupported Media Type", detail: "The body must be application/json." });
    if (status === 413) return problemResponse({ status, title: "Payload Too Large", detail: err.message || "The body is too large." });
    if (status >= 500) return problemResponse({ ...internal(), status });
    return problemResponse({ status, title: "Error", detail: err.message || "Error" });
  }
  if (err instanceof SyntaxError) return problemResponse(invalidJson());
  if (err instanceof SecretsError) {
    // Server configuration (RUNNER_SECRETS_KEY), not input. The message names a key id, never a value.
    log.error("secrets error", { method: c.req.method, path: new URL(c.req.url).pathname, requestId: currentRequestId(), error: err });
    return problemResponse(internal("Stored secrets could not be decrypted; the operator must check RUNNER_SECRETS_KEY."));
  }
  log.error("unhandled error", { method: c.req.method, path: new URL(c.req.url).pathname, requestId: currentRequestId(), error: err });
  return problemResponse(internal());
}
