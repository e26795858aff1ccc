import { describe, expect, it } from "vitest";
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

  it("serves /openapi.json and /docs", async () => {
    const o = await api("GET", "/openapi.json", { token: null });
    expect(o.status).toBe(200);
    expect(o.json.openapi).toBe("3.1.0");
    const d = await api("GET", "/docs", { token: null });
    expect(d.status).toBe(200);
    expect(d.text).toContain("/openapi.json");
  });

  it("answers unknown paths with problem+json 404", async () => {
    const r = await api("GET", "/nope", { token: null });
    expect(r.status).toBe(404);
    expect(r.headers.get("content-type")).toContain("application/problem+json");
  });
});
