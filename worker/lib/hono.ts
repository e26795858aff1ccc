import { OpenAPIHono } from "@hono/zod-openapi";
import type { ZodError } from "zod";
import type { AuthVars } from "./auth";
import { badRequest, type FieldError } from "./problem";

export type AppEnv = { Bindings: Env; Variables: AuthVars };

export function zodFieldErrors(error: ZodError, prefix?: string): FieldError[] {
  return error.issues.map((i) => ({
    field: [prefix, ...i.path.map(String)].filter((s) => s !== undefined && s !== "").join(".") || prefix || "body",
    message: i.message,
  }));
}

/**
 * Every router is made here so that validation failures of any route become the same
 * problem+json 400 naming each field (query fields prefixed by nothing, body fields by path).
 */
export function router() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const target = (result as { target?: string }).target;
        throw badRequest(zodFieldErrors(result.error as ZodError, target === "json" ? undefined : undefined));
      }
    },
  });
}
