import { createRoute, z } from "@hono/zod-openapi";
import { ownJwks } from "../lib/auth";
import { jsonAnswer, router } from "../lib/hono";

/** Unauthenticated endpoints: health and keys. `/openapi.json` is added in app.ts; `/docs` is in routes/ui.ts. */
export const meta = router();

const tags = ["Service"];
const open: [] = []; // no bearer token needed

meta.openapi(
  createRoute({
    method: "get",
    path: "/health",
    tags,
    summary: "Liveness: 200 while the Worker answers",
    security: open,
    responses: { 200: jsonAnswer(z.object({ status: z.literal("ok"), time: z.number().int() }).openapi("Health"), "Up") },
  }),
  (c) => c.json({ status: "ok" as const, time: Date.now() }, 200),
);

const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).openapi("JWKS");

meta.openapi(
  createRoute({
    method: "get",
    path: "/.well-known/jwks.json",
    tags,
    summary: "The public keys that verify Runner's own tokens (ES256)",
    security: open,
    responses: { 200: jsonAnswer(Jwks, "A JSON Web Key Set (public keys only)") },
  }),
  (c) => c.json(ownJwks(c.env) as z.infer<typeof Jwks>, 200, { "cache-control": "public, max-age=300" }),
);
