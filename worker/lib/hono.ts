import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
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
