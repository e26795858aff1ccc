import { Hono } from "hono";
import type { AppEnv } from "../lib/hono";
import { problemResponse } from "../lib/problem";

/**
 * The dashboard (`/ui/…`) and the API reference (`/docs`), served from Workers Static Assets
 * (`[assets]` in wrangler.toml, built into public/ by scripts/build-ui.mjs). Same origin as the
 * API, nothing from a CDN, and a Content-Security-Policy that allows no inline script. These are
 * pages, not API routes: they are not in /openapi.json.
 */
export const ui = new Hono<AppEnv>();

/** The dashboard: only its own files, no inline script or style, no frames, API calls to this origin only. */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** swagger-ui sets inline styles on the elements it draws; scripts are still only its own files. */
export const DOCS_CSP = UI_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'");

async function fromAssets(env: Env, request: Request, path: string, csp: string): Promise<Response> {
  if (!env.ASSETS) return problemResponse({ status: 503, title: "Service Unavailable", detail: "The dashboard's files are not built (npm run build:ui)." });
  const url = new URL(request.url);
  url.pathname = path;
  url.search = "";
  const r = await env.ASSETS.fetch(new Request(url, { method: request.method === "HEAD" ? "HEAD" : "GET", headers: request.headers }));
  if (r.status === 404) return problemResponse({ status: 404, title: "Not Found", detail: "No such resource." });
  const res = new Response(r.body, r);
  res.headers.set("content-security-policy", csp);
  res.headers.set("x-content-type-options", "nosniff");
  res.headers.set("referrer-policy", "no-referrer");
  res.headers.set("x-frame-options", "DENY");
  res.headers.set("cross-origin-opener-policy", "same-origin");
  // Revalidate every time (the ETag makes it cheap): a deploy is seen at once.
  res.headers.set("cache-control", "no-cache");
  return res;
}

ui.get("/", (c) => c.redirect("/ui/", 302));
ui.get("/ui", (c) => c.redirect("/ui/", 302));
ui.get("/ui/*", (c) => {
  const path = new URL(c.req.url).pathname;
  // The app routes by the URL's fragment (#/jobs/…): every page is /ui/ itself.
  return fromAssets(c.env, c.req.raw, path.endsWith("/index.html") ? "/ui/" : path, UI_CSP);
});
ui.get("/docs", (c) => fromAssets(c.env, c.req.raw, "/docs/", DOCS_CSP));
ui.get("/docs/*", (c) => {
  const path = new URL(c.req.url).pathname;
  return fromAssets(c.env, c.req.raw, path.endsWith("/index.html") ? "/docs/" : path, DOCS_CSP);
});
