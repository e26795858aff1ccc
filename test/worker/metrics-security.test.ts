import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";

/** GET /metrics names every account: only operators (a token for "*") may read it. */
describe("GET /metrics (security)", () => {
  it("answers 401 without a token or with a bad one", async () => {
    for (const headers of [{}, { authorization: "Bearer not-a-jwt" }] as Record<string, string>[]) {
      const r = await api("GET", "/metrics", { token: null, headers });
      expect(r.status).toBe(401);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
      expect(r.text).not.toContain("runner_");
    }
  });

  it("refuses every account's token, whatever its role, with 403 and says why", async () => {
    for (const role of ["admin", "user", "viewer"] as const) {
      for (const accounts of [["acme"], ["acme", "other"]]) {
        const r = await api("GET", "/metrics", { token: await token(accounts, role) });
        expect(r.status, `${role} of ${accounts}`).toBe(403);
        expect(r.headers.get("content-type")).toContain("application/problem+json");
        expect(r.json.detail).toContain("operators");
        expect(r.text).not.toContain("runner_executions");
      }
    }
  });

  it("answers operators of any role", async () => {
    for (const role of ["admin", "user", "viewer"] as const) {
      const r = await api("GET", "/metrics", { token: await token("*", role) });
      expect(r.status, role).toBe(200);
      expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(r.headers.get("cache-control")).toBe("no-store");
    }
  });
});
