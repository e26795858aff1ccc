import { swaggerUI } from "@hono/swagger-ui";
import { ownJwks } from "../lib/auth";
import { router } from "../lib/hono";

/** Unauthenticated endpoints: health, keys and docs. `/openapi.json` is added in app.ts. */
export const meta = router();

meta.get("/health", (c) => c.json({ status: "ok", time: Date.now() }));
meta.get("/.well-known/jwks.json", (c) => c.json(ownJwks(c.env), 200, { "cache-control": "public, max-age=300" }));
meta.get("/docs", swaggerUI({ url: "/openapi.json" }));
