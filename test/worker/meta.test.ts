import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app";
import { onError } from "../../worker/lib/problem";
import { api } from "./helpers";

describe("meta endpoints (happy)", () => {
  it("answers /health without a token", async () => {
    const r = await api("GET", "/health", { token: null });
    expect(r.status).toBe(200);
    expect(r.json.status).toBe("ok");
  });

  it("publishes only public keys at /.well-known/jwks.json", async () => {
    const r = await api("GET", "/.well-known/jwks.json", { token: null });
    expect(r.status).toBe(200);
    expect(r.json.keys).toHaveLength(1);
    expect(r.json.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256" });
    expect(r.json.keys[0].d).toBeUndefined();
  });

  it("serves /openapi.json and renders it at /docs with files of its own (no CDN, no inline script)", async () => {
    const o = await api("GET", "/openapi.json", { token: null });
    expect(o.status).toBe(200);
    expect(o.json.openapi).toBe("3.1.0");
    const d = await api("GET", "/docs", { token: null });
    expect(d.status).toBe(200);
    expect(d.headers.get("content-type")).toContain("text/html");
    expect(d.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(d.text).toContain("/docs/swagger-ui-bundle.js");
    expect(d.text).toContain("/openapi.json");
    expect(d.text).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(d.text).not.toMatch(/<script>/);
    const bundle = await api("GET", "/docs/swagger-ui-bundle.js", { token: null });
    expect(bundle.status).toBe(200);
    expect(bundle.text).toContain("SwaggerUIBundle");
  });

  it("serves the dashboard at /ui/ (and / and /ui redirect there) with a strict Content-Security-Policy", async () => {
    for (const from of ["/", "/ui"]) {
      const r = await SELF.fetch(`http://runner.test${from}`, { redirect: "manual" });
      expect(r.status, from).toBe(302);
      expect(r.headers.get("location")).toBe("/ui/");
    }
    const page = await api("GET", "/ui/", { token: null });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    const csp = page.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.text).toContain('src="/ui/app.js"');
    expect(page.text).not.toMatch(/<script>/);
    const js = await api("GET", "/ui/app.js", { token: null });
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("javascript");
    expect((await api("GET", "/ui/nope.js", { token: null })).status).toBe(404);
  });

  it("/openapi.json lists every route the app serves, with its method", async () => {
    const doc = (await api("GET", "/openapi.json", { token: null })).json as { paths: Record<string, Record<string, unknown>> };
    const served = app.routes
      // Pages, not API routes: the dashboard and the rendered reference (worker/routes/ui.ts).
      .filter((r) => r.method !== "ALL" && !["/", "/ui", "/ui/*", "/docs", "/docs/*", "/openapi.json"].includes(r.path))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(served.length).toBeGreaterThan(25);
    expect([...new Set(served)].sort()).toEqual([...new Set(documented)].sort());
  });

  it("every route that needs a credential answers 401 with a Bearer challenge without one (and with a bad one)", async () => {
    const doc = (await api("GET", "/openapi.json", { token: null })).json as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    let checked = 0;
    for (const [template, ops] of Object.entries(doc.paths)) {
      const path = template.replace(/\{alias\}/g, "acme").replace(/\{(\w+)\}/g, () => crypto.randomUUID());
      for (const [method, op] of Object.entries(ops)) {
        if (Array.isArray(op.security) && op.security.length === 0) continue; // open: /health, jwks
        for (const auth of [null, "Bearer not-a-jwt"]) {
          const r = await api(method.toUpperCase(), path, {
            token: null,
            body: method === "get" ? undefined : {},
            headers: auth ? { authorization: auth } : {},
          });
          expect(r.status, `${method} ${template} (${auth ?? "no token"})`).toBe(401);
          expect(r.headers.get("www-authenticate"), `${method} ${template}`).toMatch(/^Bearer realm="runner"/);
          expect(r.headers.get("content-type")).toContain("application/problem+json");
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(50);
  });

  it("/openapi.json is generated from the schemas that validate", async () => {
    const doc = (await api("GET", "/openapi.json", { token: null })).json;
    const s = doc.components.schemas;
    // Rules the validators enforce appear as they are: change a schema and both change.
    expect(s.JobInput.properties.executionTtl).toMatchObject({ minimum: 1, maximum: 10080 });
    expect(JSON.stringify(s.Callback.properties.level)).toContain('["DEBUG","ERROR","RESULT"');
    expect(s.StopExecution.properties.expiryDuration).toMatchObject({ minimum: 0 });
    const list = doc.paths["/jobs/{alias}/executions"].get.parameters as { name: string; schema: unknown }[];
    expect(JSON.stringify(list.find((p) => p.name === "status")!.schema)).toContain("#/components/schemas/ExecutionStatus");
    expect(s.ExecutionStatus.enum).toHaveLength(10);
    expect(list.find((p) => p.name === "size")!.schema).toMatchObject({ minimum: 1, maximum: 100 });
    expect(doc.paths["/jobs/{alias}"].post.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/JobInput");
    expect(doc.paths["/health"].get.security).toEqual([]);
  });

  it("a 500 says nothing of what went wrong inside", async () => {
    const inner = new TypeError("Cannot read properties of undefined (reading 'sshPrivateKey') at worker/domain/jobs.ts:123 SELECT * FROM jobs");
    const c = { req: { method: "GET", url: "http://runner.test/jobs/acme" } } as Parameters<typeof onError>[1];
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...a: unknown[]) => void errors.push(a); // logged for the operator, not answered
    let res: Response;
    try {
      res = onError(inner, c);
    } finally {
      console.error = original;
    }
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({
      type: "https://runner.dev/problems/internal-server-error",
      title: "Internal Server Error",
      status: 500,
      detail: "Something went wrong on our side.",
    });
    for (const leak of ["sshPrivateKey", "jobs.ts", "SELECT", "TypeError", "undefined"]) expect(text).not.toContain(leak);
    expect(errors).toHaveLength(1);
  });

  it("answers unknown paths with problem+json 404", async () => {
    const r = await api("GET", "/nope", { token: null });
    expect(r.status).toBe(404);
    expect(r.headers.get("content-type")).toContain("application/problem+json");
  });
});
