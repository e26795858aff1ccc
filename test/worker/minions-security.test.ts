import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { lease, newAgent, regToken } from "./agent-fixtures";

describe("minions API (security and bad input)", () => {
  it("another account's agents and tokens are 404, and stay untouched", async () => {
    const a = await newAgent("own"); // registers through a token of its own
    await regToken("own");
    const tokens = await api("GET", "/minions/own/tokens", { token: await token(["own"], "admin") });
    const tokenId = tokens.json.results[0].id;
    const stranger = await token(["other"], "admin");
    expect((await api("GET", "/minions/own", { token: stranger })).status).toBe(404);
    expect((await api("GET", `/minions/own/${a.agentId}`, { token: stranger })).status).toBe(404);
    expect((await api("DELETE", `/minions/own/${a.agentId}`, { token: stranger })).status).toBe(404);
    expect((await api("POST", "/minions/own/tokens", { token: stranger, body: {} })).status).toBe(404);
    expect((await api("DELETE", `/minions/own/tokens/${tokenId}`, { token: stranger })).status).toBe(404);
    // Through the stranger's own alias the ids are unknown too.
    expect((await api("GET", `/minions/other/${a.agentId}`, { token: stranger })).status).toBe(404);
    expect((await api("DELETE", `/minions/other/${a.agentId}`, { token: stranger })).status).toBe(404);
    expect((await api("DELETE", `/minions/other/tokens/${tokenId}`, { token: stranger })).status).toBe(404);
    // Still alive.
    expect((await lease(a, 0)).status).toBe(204);
    expect((await api("GET", "/minions/own/tokens", { token: await token(["own"], "admin") })).json.totalSize).toBe(2);
  });

  it("only an admin adds agents: a user may not create or revoke tokens, nor revoke agents (403), and nothing changes", async () => {
    const a = await newAgent("usr");
    await regToken("usr");
    const admin = await token(["usr"], "admin");
    const user = await token(["usr"], "user");
    const tokensBefore = await api("GET", "/minions/usr/tokens", { token: admin });
    const tokenId = tokensBefore.json.results[0].id;
    const minted = await api("POST", "/minions/usr/tokens", { token: user, body: { name: "rogue" } });
    expect(minted.status).toBe(403);
    expect(minted.text).not.toContain("rrt_");
    // An empty POST is refused the same way (access is checked before the body).
    expect((await api("POST", "/minions/usr/tokens", { token: user })).status).toBe(403);
    expect((await api("DELETE", `/minions/usr/tokens/${tokenId}`, { token: user })).status).toBe(403);
    expect((await api("DELETE", `/minions/usr/${a.agentId}`, { token: user })).status).toBe(403);
    expect((await api("GET", "/minions/usr/tokens", { token: admin })).json).toEqual(tokensBefore.json);
    expect((await api("GET", `/minions/usr/${a.agentId}`, { token: user })).status).toBe(200);
    expect((await lease(a, 0)).status).toBe(204);
  });

  it("a viewer may list but not create tokens or revoke agents", async () => {
    const a = await newAgent("ro");
    const viewer = await token(["ro"], "viewer");
    expect((await api("GET", "/minions/ro", { token: viewer })).status).toBe(200);
    expect((await api("POST", "/minions/ro/tokens", { token: viewer, body: {} })).status).toBe(403);
    expect((await api("DELETE", `/minions/ro/${a.agentId}`, { token: viewer })).status).toBe(403);
    expect((await lease(a, 0)).status).toBe(204);
  });

  it("needs a bearer token; an agent credential is not one", async () => {
    const a = await newAgent("tok");
    expect((await api("GET", "/minions/tok", { token: null })).status).toBe(401);
    expect((await api("GET", "/minions/tok", { token: a.credential })).status).toBe(401);
  });

  it("missing ids are 404; a revoked agent cannot be revoked twice", async () => {
    const a = await newAgent("miss");
    const admin = await token(["miss"], "admin");
    expect((await api("GET", `/minions/miss/${crypto.randomUUID()}`, { token: admin })).status).toBe(404);
    expect((await api("DELETE", `/minions/miss/${crypto.randomUUID()}`, { token: admin })).status).toBe(404);
    expect((await api("DELETE", `/minions/miss/tokens/${crypto.randomUUID()}`, { token: admin })).status).toBe(404);
    expect((await api("DELETE", `/minions/miss/${a.agentId}`, { token: admin })).status).toBe(204);
    expect((await api("DELETE", `/minions/miss/${a.agentId}`, { token: admin })).status).toBe(404);
    expect((await api("GET", `/minions/miss/${a.agentId}`, { token: admin })).status).toBe(404);
  });

  it("bad input is a 400 naming the field", async () => {
    const admin = await token(["inp"], "admin");
    const r = await api("POST", "/minions/inp/tokens", { token: admin, body: { name: 5, location: "", description: "d".repeat(1001) } });
    expect(r.status).toBe(400);
    expect((r.json.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(["description", "location", "name"]);
    expect((await api("POST", "/minions/inp/tokens", { token: admin, body: "{nope" })).status).toBe(400);
    const p = await api("GET", "/minions/inp?size=0&page=-1", { token: admin });
    expect(p.status).toBe(400);
    expect((p.json.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(["page", "size"]);
    expect((await api("GET", "/minions/x", { token: await token("*", "admin") })).status).toBe(400);
  });
});
