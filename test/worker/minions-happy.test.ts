import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { ageAgent, call, held, lastSeenInD1, lease, newAgent, newExecution, newJob } from "./agent-fixtures";

describe("minions API (happy)", () => {
  it("lists the account's agents with online, lastSeen and running executions", async () => {
    const a = await newAgent("crew", { name: "alpha", location: "dc1" });
    const b = await newAgent("crew", { name: "beta" });
    const job = await newJob("crew");
    const e1 = await newExecution("crew", job);
    expect((await lease(b)).json.executionId).toBe(e1);

    const r = await api("GET", "/minions/crew", { token: await token(["crew"], "viewer") });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ totalSize: 2, page: 0, size: 100 });
    // Newest first.
    expect(r.json.results.map((x: any) => x.id)).toEqual([b.agentId, a.agentId]);
    const [beta, alpha] = r.json.results;
    expect(beta).toMatchObject({ name: "beta", location: null, version: "0.1.0", hostname: "h.example", online: true, runningExecutions: [e1] });
    expect(alpha).toMatchObject({ name: "alpha", location: "dc1", online: true, runningExecutions: [] });
    expect(alpha.lastSeen).toBeGreaterThan(0);
    expect(JSON.stringify(r.json)).not.toMatch(/rac_|credential/);

    // A finished execution is no longer running there.
    await call(b, "POST", `/agent/executions/${e1}/status`, { ...held(e1), status: "RUNNING" });
    await call(b, "POST", `/agent/executions/${e1}/status`, { ...held(e1), status: "FAILURE" });
    const one = await api("GET", `/minions/crew/${b.agentId}`, { token: await token(["crew"], "viewer") });
    expect(one.status).toBe(200);
    expect(one.json.runningExecutions).toEqual([]);

    const paged = await api("GET", "/minions/crew?page=1&size=1", { token: await token(["crew"], "viewer") });
    expect(paged.json).toMatchObject({ totalSize: 2, page: 1, size: 1 });
    expect(paged.json.results.map((x: any) => x.id)).toEqual([a.agentId]);
  });

  it("an agent not seen for a minute is offline; its calls bring it back (lastSeen written at most every 30 s)", async () => {
    const a = await newAgent("seen");
    await ageAgent(a.agentId, Date.now() - 120_000);
    const before = await api("GET", `/minions/seen/${a.agentId}`, { token: await token(["seen"], "viewer") });
    expect(before.json.online).toBe(false);

    expect((await lease(a, 0)).status).toBe(204);
    const row = async () => (await lastSeenInD1(a.agentId))!;
    // The write happens after the answer (the object's waitUntil): wait for it.
    let seen = 0;
    for (let i = 0; i < 100 && (seen = await row()) < Date.now() - 60_000; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toBeGreaterThan(Date.now() - 60_000);
    const after = await api("GET", `/minions/seen/${a.agentId}`, { token: await token(["seen"], "viewer") });
    expect(after.json.online).toBe(true);

    // Within the throttle window another call does not write again.
    await lease(a, 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(await row()).toBe(seen);
  });

  it("revoking an agent removes it from the list", async () => {
    const a = await newAgent("gone-crew");
    expect((await api("DELETE", `/minions/gone-crew/${a.agentId}`, { token: await token(["gone-crew"], "admin") })).status).toBe(204);
    const r = await api("GET", "/minions/gone-crew", { token: await token(["gone-crew"], "viewer") });
    expect(r.json).toMatchObject({ totalSize: 0, results: [] });
    const row = await env.DB.prepare("SELECT revoked_time FROM agents WHERE id = ?").bind(a.agentId).first<{ revoked_time: number }>();
    expect(row!.revoked_time).toBeGreaterThan(0);
  });

  it("publishes the minions and agent routes in /openapi.json", async () => {
    const r = await api("GET", "/openapi.json", { token: null });
    expect(r.status).toBe(200);
    for (const p of [
      "/minions/{alias}",
      "/minions/{alias}/tokens",
      "/minions/{alias}/{agentId}",
      "/minions/~shared",
      "/minions/~shared/{agentId}",
      "/agent/register",
      "/agent/lease",
      "/agent/executions/{executionId}/events",
    ]) {
      expect(Object.keys(r.json.paths)).toContain(p);
    }
    expect(r.json.components.schemas.Agent.properties.runningExecutions).toBeTruthy();
  });

  it("creates a token from an empty body", async () => {
    const r = await api("POST", "/minions/empty/tokens", { token: await token(["empty"], "admin") });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ name: null, description: null, location: null });
    expect(r.json.token).toMatch(/^rrt_/);
  });
});

describe("the concurrency an agent runs with", () => {
  it("is what its lease polls report, whatever it registered with (run --concurrency may differ)", async () => {
    const alias = "conc";
    const a = await newAgent(alias); // registered without a concurrency: 1
    const t = await token([alias], "viewer");
    const shown = async () => (await api("GET", `/minions/${alias}`, { token: t })).json.results[0].concurrency;
    expect(await shown()).toBe(1);
    expect((await call(a, "POST", "/agent/lease", { capacity: 0, concurrency: 3, waitMs: 0 })).status).toBe(204);
    // Written in the background of the poll (waitUntil): give it a moment.
    for (let i = 0; i < 50 && (await shown()) !== 3; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await shown()).toBe(3);
    // A poll without it (an older agent) leaves it as it is.
    expect((await call(a, "POST", "/agent/lease", { capacity: 0, waitMs: 0 })).status).toBe(204);
    expect(await shown()).toBe(3);
    const bad = await call(a, "POST", "/agent/lease", { capacity: 0, concurrency: 0 });
    expect(bad.status).toBe(400);
  });
});
