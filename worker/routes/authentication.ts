import { createRoute } from "@hono/zod-openapi";
import { login } from "../domain/login";
import { jsonAnswer, jsonBody, router } from "../lib/hono";
import { originOf } from "../lib/request-context";
import { problemResponses } from "../lib/problem";
import { LoginAnswer, LoginInput } from "../schemas/login";

/** The login (no bearer token needed). Mounted at /authentication. */
export const authentication = router();

authentication.openapi(
  createRoute({
    method: "post",
    path: "/login",
    tags: ["Authentication"],
    summary: "Log in as a service account: a bearer token for its account and role",
    description:
      "An unknown username and a wrong password answer the same 401. After 5 failures for one username within a minute, " +
      "it answers 429 with Retry-After (60 s, growing while failures go on, at most 15 min); a successful login resets that.",
    security: [],
    request: { body: jsonBody(LoginInput) },
    responses: { 200: jsonAnswer(LoginAnswer, "The token"), ...problemResponses(400, 401, 413, 415, 429) },
  }),
  async (c) => c.json(await login(c.env, c.req.valid("json"), originOf(c)), 200, { "cache-control": "no-store" }),
);
