import { OpenAPIHono, type z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { ZodError } from "zod";
import type { AuthVars } from "./auth";
import { badRequest, type FieldError } from "./problem";

export type AppEnv = { Bindings: Env; Variables: AuthVars };

/**
 * Zod issues as field errors: `field` is the dotted path (`hosts.1.id`, `page`); an issue about
 * the whole input is named by `prefix` (or "body").
 */
export function zodFieldErrors(error: ZodError, prefix?: string): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const i of error.issues) {
    const field = [prefix, ...i.path.map(String)].filter((s) => s !== undefined && s !== "").join(".") || prefix || "body";
    const key = `${field}\u0000${i.message}`;
    if (seen.has(key)) continue; // e.g. a union reporting the same thing twice
    seen.add(key);
    out.push({ field, message: i.message });
  }
  return out;
}

type HookResult = { success: boolean; error?: unknown; data?: unknown; target?: string };
/** Extra checks that need the request (e.g. env-dependent rules); they see the raw input. */
export type ExtraCheck = (target: string, data: unknown, c: Context<AppEnv>) => FieldError[];

/**
 * The validation hook of every route: all failures of one input become one 400 naming each field.
 * `extra` adds rules the static schema cannot express, reported together with the schema's.
 */
export function validationHook(extra?: ExtraCheck) {
  return (result: HookResult, c: Context<AppEnv>): undefined => {
    const target = result.target ?? "body";
    const errors = result.success ? [] : zodFieldErrors(result.error as ZodError);
    // An issue about the whole input (empty path) is named after where it came from.
    for (const e of errors) if (e.field === "body" && target !== "json") e.field = target;
    if (extra) errors.push(...extra(target, result.data, c));
    if (errors.length) throw badRequest(errors);
    return undefined;
  };
}

/**
 * Every router is made here so that validation failures of any route become the same
 * problem+json 400 naming each field (query parameters by name, body fields by dotted path).
 */
export function router<E extends AppEnv = AppEnv>() {
  return new OpenAPIHono<E>({ defaultHook: validationHook() as never });
}

// ---- pieces of createRoute() that every router uses

/** A JSON request body; an optional one may be left out (see `emptyJsonIsNoBody`). */
export const jsonBody = <T extends z.ZodType>(schema: T, required = true) => ({ required, content: { "application/json": { schema } } });

/** A JSON answer. */
export const jsonAnswer = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

/** Clients POST actions with a JSON content type and no body at all: that is no body (so `{}`), not bad JSON. */
export const emptyJsonIsNoBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  // Bytes, not c.req.text(): workerd warns when a form or binary content type is read as text.
  if (c.req.header("content-type") && new TextDecoder().decode(await c.req.arrayBuffer()).trim() === "") {
    const headers = new Headers(c.req.raw.headers);
    headers.delete("content-type");
    c.req.raw = new Request(c.req.raw.url, { method: c.req.raw.method, headers });
  }
  await next();
};
