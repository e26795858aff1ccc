import { z } from "@hono/zod-openapi";

/** What every route shares: path parameters and paging. */

/** A path parameter (its rules, e.g. the alias's, are checked by `authorize` or the domain). */
export const pathParam = (name: string, example?: string) => z.string().openapi({ param: { name, in: "path" }, ...(example ? { example } : {}) });
export const AliasParam = pathParam("alias", "acme");
export const AliasOnly = z.object({ alias: AliasParam });

// ---- free-form JSON (extra vars, host vars, event data)

/** How deep free-form JSON may nest: deeper values could not even cross Durable Object RPC (a 500). */
export const MAX_JSON_DEPTH = 32;

/** The nesting depth of `v`, counted up to just past `limit`. */
export function jsonDepth(v: unknown, limit = MAX_JSON_DEPTH): number {
  // Iterative so that a hostile nesting depth cannot overflow the stack here.
  let max = 0;
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (d > max) max = d;
    if (max > limit) return max;
    if (typeof x === "object" && x !== null) for (const c of Object.values(x)) stack.push([c, d + 1]);
  }
  return max;
}

/** A JSON object (not an array) that nests at most MAX_JSON_DEPTH levels. */
export const jsonObject = (what: string) =>
  z.record(z.string(), z.unknown()).refine((v) => jsonDepth(v) <= MAX_JSON_DEPTH, { message: `${what} must nest at most ${MAX_JSON_DEPTH} levels` });

// ---- paging (README, "A session with curl"): `page` from 0 and `size` 1-100 (default 100) in,
// `{totalSize, page, size, results}` out, all four always present.

export const MAX_PAGE_SIZE = 100;

/** A whole number from the query string: digits only (no `1e2`, `0x1`, sign or repeats), then a number. */
export const queryInt = (name: string, min: number, max: number, fallback: number, description: string) =>
  z
    .string()
    .refine((s) => /^\d{1,15}$/.test(s) && Number(s) >= min && Number(s) <= max, { message: `must be a whole number from ${min} to ${max}` })
    .optional()
    .transform((s) => (s === undefined ? fallback : Number(s)))
    .openapi({ param: { name, in: "query" }, type: "integer", minimum: min, maximum: max, default: fallback, description });

export const PageQuery = z.object({
  page: queryInt("page", 0, 100_000_000, 0, "Page number, from 0."),
  size: queryInt("size", 1, MAX_PAGE_SIZE, MAX_PAGE_SIZE, `Page size, 1-${MAX_PAGE_SIZE}.`),
});
export type PageParams = z.output<typeof PageQuery>;

export interface Page<T> {
  totalSize: number;
  page: number;
  size: number;
  results: T[];
}

/** The answer schema of a list of `item`, registered in /openapi.json as `name`. */
export function pageSchema<T extends z.ZodTypeAny>(item: T, name: string) {
  return z.object({ totalSize: z.number().int(), page: z.number().int(), size: z.number().int(), results: z.array(item) }).openapi(name);
}

export function pageOf<T>(p: PageParams, totalSize: number, results: T[]): Page<T> {
  return { totalSize, page: p.page, size: p.size, results };
}
