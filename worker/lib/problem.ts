import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";

/** One offending input: `field` is a dotted path into the body/query (e.g. `hosts.1.id`). */
export interface FieldError {
  field: string;
  message: string;
}

/** The one error type of the API; `onError` turns it into RFC 9457 problem+json. */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail ?? title);
  }
}

export const badRequest = (errors: FieldError[], detail = "The request is invalid; see errors.") =>
  new ProblemError(400, "Bad Request", detail, errors);
export const unauthorized = (detail: string) =>
  new ProblemError(401, "Unauthorized", detail, undefined, {
    "WWW-Authenticate": `Bearer realm="runner", error="invalid_token", error_description="${detail.replace(/"/g, "'")}"`,
  });
export const forbidden = (detail: string) => new ProblemError(403, "Forbidden", detail);
export const notFound = (detail = "Not found.") => new ProblemError(404, "Not Found", detail);
export const conflict = (detail: string) => new ProblemError(409, "Conflict", detail);

const TYPE_BASE = "https://runner.dev/problems/";

export function problemBody(status: number, title: string, detail?: string, errors?: FieldError[]) {
  return {
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
): Response {
  return new Response(JSON.stringify(problemBody(status, title, detail, errors)), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

/** The single error mapper: known errors keep their status, anything else is a 500 without internals. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof ProblemError) {
    return problemResponse(err.status, err.title, err.detail, err.errors, err.headers);
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    const title = status === 413 ? "Payload Too Large" : status === 415 ? "Unsupported Media Type" : status === 400 ? "Bad Request" : "Error";
    return problemResponse(status, title, err.message || title);
  }
  if (err instanceof SyntaxError) {
    return problemResponse(400, "Bad Request", "The body is not valid JSON.");
  }
  console.error("unhandled error", c.req.method, new URL(c.req.url).pathname, err);
  return problemResponse(500, "Internal Server Error", "Something went wrong on our side.");
}
