import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";

/** One offending input: `field` is a dotted path into the body/query (e.g. `hosts.1.id`). */
export interface FieldError {
  field: string;
  message: string;
}

/** Extra problem members (RFC 9457 extensions): plain values, so they cross RPC as they are. */
export type Extensions = Record<string, string | number | boolean | null>;

/** The one error type of the API; `onError` turns it into RFC 9457 problem+json. */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
    /** Extra problem members (RFC 9457 extensions), e.g. `command: "abandon"` for agents. */
    readonly extensions?: Extensions,
  ) {
    super(detail ?? title);
  }
}

/** A ProblemError as plain data, the form in which it crosses Durable Object RPC (see `Outcome`). */
export interface ProblemData {
  status: number;
  title: string;
  detail?: string;
  errors?: FieldError[];
  headers?: Record<string, string>;
  extensions?: Extensions;
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
    const { status, title, detail, errors, headers, extensions } = e;
    return { ok: false, problem: { status, title, detail, errors, headers, extensions } };
  }
}

/** The caller's side: the value, or the refusal thrown again as the ProblemError it was. */
export function settle<T>(o: Outcome<T>): T {
  if (o.ok) return o.value;
  const p = o.problem;
  throw new ProblemError(p.status, p.title, p.detail, p.errors, p.headers, p.extensions);
}

export const badRequest = (errors: FieldError[], detail = "The request is invalid; see errors.") =>
  new ProblemError(400, "Bad Request", detail, errors);
/**
 * 401 with the RFC 6750 challenge. A request without credentials gets a bare challenge
 * (`missingToken`); a bad token gets `error="invalid_token"`.
 */
export const unauthorized = (detail: string, missingToken = false) =>
  new ProblemError(401, "Unauthorized", detail, undefined, {
    "WWW-Authenticate": missingToken
      ? `Bearer realm="runner"`
      : `Bearer realm="runner", error="invalid_token", error_description="${detail.replace(/["\\]/g, "'")}"`,
  });
export const forbidden = (detail: string) => new ProblemError(403, "Forbidden", detail);
export const notFound = (detail = "Not found.") => new ProblemError(404, "Not Found", detail);
export const conflict = (detail: string, errors?: FieldError[]) => new ProblemError(409, "Conflict", detail, errors);
/** 429 with `Retry-After` in whole seconds (at least 1). */
export const tooManyRequests = (detail: string, retryAfterSeconds: number) =>
  new ProblemError(429, "Too Many Requests", detail, undefined, { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) });

/** The RFC 9457 body, for /openapi.json. */
export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
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
  return Object.fromEntries(
    statuses.map((s) => [s, { description: text[s] ?? "Error", content: { "application/problem+json": { schema: ProblemSchema } } }]),
  );
}

const TYPE_BASE = "https://runner.dev/problems/";

export function problemBody(status: number, title: string, detail?: string, errors?: FieldError[], extensions?: Extensions) {
  return {
    ...extensions,
    type: `${TYPE_BASE}${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`,
    title,
    status,
    detail: detail ?? title,
    ...(errors && errors.length ? { errors } : {}),
  };
}

export function problemResponse(
  status: number,
  title: string,
  detail?: string,
  errors?: FieldError[],
  headers?: Record<string, string>,
  extensions?: Extensions,
): Response {
  return new Response(JSON.stringify(problemBody(status, title, detail, errors, extensions)), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

/** The single error mapper: known errors keep their status, anything else is a 500 without internals. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof ProblemError) {
    return problemResponse(err.status, err.title, err.detail, err.errors, err.headers, err.extensions);
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    if (status === 400) {
      // Hono's validators throw this for a body that does not parse as JSON.
      return problemResponse(400, "Bad Request", "The body is not valid JSON.", [{ field: "body", message: "is not valid JSON" }]);
    }
    if (status === 415) return problemResponse(415, "Unsupported Media Type", "The body must be application/json.");
    if (status === 413) return problemResponse(413, "Payload Too Large", err.message || "The body is too large.");
    return problemResponse(status, status >= 500 ? "Internal Server Error" : "Error", status >= 500 ? "Something went wrong on our side." : err.message || "Error");
  }
  if (err instanceof SyntaxError) {
    return problemResponse(400, "Bad Request", "The body is not valid JSON.", [{ field: "body", message: "is not valid JSON" }]);
  }
  if (err.name === "SecretsError") {
    // Server configuration (RUNNER_SECRETS_KEY), not input. The message names a key id, never a value.
    console.error("secrets error", c.req.method, new URL(c.req.url).pathname, err.message);
    return problemResponse(500, "Internal Server Error", "Stored secrets could not be decrypted; the operator must check RUNNER_SECRETS_KEY.");
  }
  console.error("unhandled error", c.req.method, new URL(c.req.url).pathname, err);
  return problemResponse(500, "Internal Server Error", "Something went wrong on our side.");
}
