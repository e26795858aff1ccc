import type { Context, MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { AgentRow } from "../db/agents";
import type { Actor, ActorKind, Origin } from "../schemas/audit";
import { ALIAS_RE, type Principal } from "./auth";
import { log } from "./log";
import { REQUEST_ID_HEADER, requestIdFrom, type RequestVars } from "./request-id";

/**
 * Per-request context, mounted first in worker/app.ts (after hono/context-storage): the request
 * id (worker/lib/request-id.ts) on every answer, and one JSON line per request through the
 * worker's logger once the answer is ready:
 *
 *   {time, level, msg: "request", requestId, method, route, status, durationMs, account, subject, subjectKind}
 *
 * `route` is the pattern that answered (`/jobs/:alias/:jobId`), never the path or its query string
 * (which could carry a token); nothing of the headers or the body is logged. `account` is the
 * path's alias (when it is one) or the agent's. `durationMs` runs to the answer's headers: a
 * streamed log is still streaming when its line is written.
 */

type Vars = RequestVars & { principal?: Principal; agent?: AgentRow };

/** The kind of a verified principal (worker/lib/auth.ts sets it from the token). */
export function principalKind(p: Principal): ActorKind {
  return p.accounts === "*" ? "operator" : (p.kind ?? "user");
}

// Cloudflare sets CF-Connecting-IP itself (a client's own is replaced at the edge). Locally anything
// can be sent, so only what looks like an address is kept.
const IP_RE = /^[0-9A-Fa-f:.]{2,45}$/;

/** Where the request came from, for an audit row. */
// biome-ignore lint/suspicious/noExplicitAny: any route's context (its path and input types do not matter here)
export function originOf(c: Context<any, any, any>): Origin {
  const ip = c.req.header("cf-connecting-ip")?.trim();
  const requestId = (c.get("requestId" as never) as string | undefined) ?? null;
  return { ip: ip && IP_RE.test(ip) ? ip : null, requestId };
}

/** Who made the request (an authenticated route's principal), and from where: what `recordAudit` takes. */
// biome-ignore lint/suspicious/noExplicitAny: any authenticated route's context
export function actorOf<E extends { Variables: { principal: Principal } }>(c: Context<E, any, any>): Actor {
  const p = c.get("principal") as Principal;
  return { ...originOf(c), subject: p.sub, kind: principalKind(p) };
}

export const requestContext: MiddlewareHandler<{ Bindings: Env; Variables: Vars }> = async (c, next) => {
  const started = Date.now();
  const requestId = requestIdFrom(c.req.header(REQUEST_ID_HEADER));
  c.set("requestId", requestId);
  await next();
  {
    // The answer: what a handler or `onError` made. Headers of a Response we did not build may be
    // immutable; then it is copied once.
    try {
      c.res.headers.set(REQUEST_ID_HEADER, requestId);
    } catch {
      c.res = new Response(c.res.body, c.res);
      c.res.headers.set(REQUEST_ID_HEADER, requestId);
    }
    const route = routePath(c);
    const alias = c.req.param("alias" as never) as string | undefined;
    const p = c.var.principal;
    const agent = c.var.agent;
    const status = c.res.status;
    const line = {
      requestId,
      method: c.req.method,
      // A middleware mounted on "*" answered (nothing matched): no route.
      route: route === "*" || route === "/*" ? null : route,
      status,
      durationMs: Date.now() - started,
      account: alias !== undefined && ALIAS_RE.test(alias) ? alias : (agent?.account_alias ?? undefined),
      subject: p?.sub ?? agent?.id,
      subjectKind: p ? principalKind(p) : agent ? "agent" : undefined,
    };
    if (status >= 500) log.error("request", line);
    else log.info("request", line);
  }
};
