import { z } from "@hono/zod-openapi";
import { MAX_PASSWORD } from "./service-account";

/**
 * POST /authentication/login: a service account's username and password in, a bearer token out.
 * The body is checked for shape only: a username that breaks the rules for new ones is simply not
 * found (401), like any other unknown one.
 */

export const LoginInput = z
  .object({
    username: z.string().min(1, { message: "must not be empty" }).max(256, { message: "must be at most 256 characters" }),
    password: z
      .string()
      .min(1, { message: "must not be empty" })
      .max(MAX_PASSWORD, { message: `must be at most ${MAX_PASSWORD} characters` })
      .openapi({ format: "password" }),
  })
  .openapi("LoginInput");
export type LoginInput = z.infer<typeof LoginInput>;

/** The first four members as the original's login answered; `accessToken` is the same token (OAuth 2.0 spelling). */
export const LoginAnswer = z
  .object({
    userName: z.string(),
    accountAlias: z.string(),
    roles: z.array(z.enum(["admin", "user", "viewer"])),
    bearerToken: z.string(),
    accessToken: z.string(),
    tokenType: z.literal("Bearer"),
    expiresIn: z.number().int().openapi({ description: "Seconds the token is valid for (TOKEN_TTL_SECONDS)." }),
  })
  .openapi("LoginAnswer");
export type LoginAnswer = z.infer<typeof LoginAnswer>;
