import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { dispatcherKey } from "../../worker/domain/contracts";
import { executionClient } from "../../worker/domain/execution-client";
import { api, token } from "./helpers";
import { call, dispatcher, execution, held, lease, newAgent, newExecution, newJob, regToken } from "./agent-fixtures";

const sha256hex = async (s: string) =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)))].map((b) => b.toString(16).padStart(2, "0")).join("");

describe("agent protocol (happy)", () => {
  it("registers with a registration token; only hashes are stored", async () => {
    const created = await api("POST", "/minions/reg/tokens", { token: await token(["reg"], "admin"), body: { name: "ci", location: "dc1" } });
    expect(created.status).toBe(200);
    expect(created.json).toMatchObject({ name: "ci", location: "dc1", description: null });
    expect(created.json.token).toMatch(/^rrt_[A-Za-z0-9_-]{43}$/);
    const tokenRow = await env.DB.prepare("SELECT * FROM agent_tokens WHERE id = ?").bind(created.json.id).first<Record<string, unknown>>();
    expect(tokenRow!.token_hash).toBe(await sha256hex(created.json.token));
    expect(JSON.stringify(tokenRow)).not.toContain(created.json.token.slice(4));

    // The token's location wins over the one the agent asks for.
    const r = await api("POST", "/agent/register", {
      token: null,
      body: { token: created.json.token, name: "build-01", location: "elsewhere", version: "0.1.0", hostname: "build-01.example", concurrency: 2 },
    });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ accountAlias: "reg", location: "dc1", shared: false, leaseTtlMs: 120_000, heartbeatIntervalMs: 5_000, pollWaitMs: 25_000 });
    expect(r.json.credential).toMatch(new RegExp(`^rac_${r.json.agentId}_[A-Za-z0-9_-]{43}$`));
    expect(r.headers.get("cache-control")).toBe("no-store");
    const agentRow = await env.DB.prepare("SELECT * FROM agents WHERE id = ?").bind(r.json.agentId).first<Record<string, unknown>>();
    expect(agentRow).toMatchObject({ account_alias: "reg", name: "build-01", location: "dc1", version: "0.1.0", hostname: "build-01.example", concurrency: 2 });
    expect(agentRow!.credential_hash).toBe(await sha256hex(r.json.credential));
    // The secret is what follows `rac_<agentId>_` (it may itself hold "_").
    expect(JSON.stringify(agentRow)).not.toContain(r.json.credential.slice(`rac_${r.json.agentId}_`.length));

    // A token serves many agents until revoked.
    const again = await api("POST", "/agent/register", { token: null, body: { token: created.json.token } });
    expect(again.status).toBe(200);
    expect(again.json.agentId).not.toBe(r.json.agentId);
  });

  it("lists registration tokens without their values", async () => {
    const t = await regToken("toks", { name: "one" });
    const r = await api("GET", "/minions/toks/tokens", { token: await token(["toks"], "viewer") });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ totalSize: 1, page: 0, size: 100 });
    expect(r.json.results[0]).toMatchObject({ name: "one" });
    expect(r.text).not.toContain(t);
    expect(r.json.results[0].token).toBeUndefined();
  });

  it("registers a shared-pool agent with an operator token", async () => {
    const r = await api("POST", "/agent/register", { token: await token("*", "admin", "op"), body: { name: "pool-1" } });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ accountAlias: null, shared: true, location: null });
    const row = await env.DB.prepare("SELECT account_alias FROM agents WHERE id = ?").bind(r.json.agentId).first();
    expect(row).toEqual({ account_alias: null });
  });

  it("hands the job's forks to the agent in the lease, and nothing when the job has none", async () => {
    const a = await newAgent("forks");
    const withForks = await newExecution("forks", await newJob("forks", { forks: 50 }));
    const plain = await newExecution("forks", await newJob("forks"));
    const jobs = new Map<string, Record<string, unknown>>();
    for (let i = 0; i < 2; i++) {
      const l = await lease(a);
      expect(l.status).toBe(200);
      jobs.set(l.json.executionId, l.json.job);
    }
    expect(jobs.get(withForks)).toMatchObject({ forks: 50 });
    expect(jobs.get(plain)).not.toHaveProperty("forks");
  });

  it("runs a lease through heartbeat, events and status to SUCCESS", async () => {
    const a = await newAgent("flow");
    const job = await newJob("flow");
    const id = await newExecution("flow", job);
    const l = await lease(a);
    expect(l.status).toBe(200);
    const base = `/agent/executions/${id}`;

    const hb = await call(a, "POST", `${base}/heartbeat`, { ...held(id) });
    expect(hb.status).toBe(200);
    expect(hb.json.command).toBeNull();
    expect(hb.json.leaseExpiresAt).toBeGreaterThanOrEqual(l.json.leaseExpiresAt);

    expect((await call(a, "POST", `${base}/status`, { ...held(id), status: "RUNNING" })).json).toMatchObject({ status: "RUNNING", command: null });
    const events = {
      ...held(id),
      events: [
        { seq: 1, timestamp: Date.now(), event_type: "playbook_on_start", stdout: "PLAY [all]\n" },
        { seq: 2, timestamp: Date.now(), event_type: "runner_on_ok", host: "web1", task: "ping", stdout: "ok: [web1]\n" },
      ],
    };
    const up = await call(a, "POST", `${base}/events`, events);
    expect(up.status).toBe(200);
    expect(up.json).toMatchObject({ acceptedThrough: 2, command: null });
    // A retried batch is acknowledged again.
    expect((await call(a, "POST", `${base}/events`, events)).json.acceptedThrough).toBe(2);

    const done = await call(a, "POST", `${base}/status`, { ...held(id), status: "SUCCESS" });
    expect(done.status).toBe(200);
    expect(done.json.status).toBe("SUCCESS");
    expect((await execution(id)).status).toBe("SUCCESS");
    // Its slot is free again.
    expect((await dispatcher(dispatcherKey("flow", null)).snapshot()).leased).toEqual([]);
  });

  it("tells the agent to stop in the heartbeat answer", async () => {
    const a = await newAgent("cmd");
    const id = await newExecution("cmd", await newJob("cmd"));
    expect((await lease(a)).status).toBe(200);
    await executionClient(env, id).stop({ accountAlias: "cmd" });
    const hb = await call(a, "POST", `/agent/executions/${id}/heartbeat`, { ...held(id) });
    expect(hb.status).toBe(200);
    expect(hb.json.command).toBe("stop");
  });

  it("release hands an unstarted execution back to the queue for another agent", async () => {
    const a = await newAgent("rel");
    const b = await newAgent("rel");
    const id = await newExecution("rel", await newJob("rel"));
    expect((await lease(a)).json.executionId).toBe(id);
    const r = await call(a, "POST", `/agent/executions/${id}/release`, { ...held(id) });
    expect(r.status).toBe(200);
    expect((await execution(id)).status).toBe("PENDING");
    const l = await lease(b);
    expect(l.status).toBe(200);
    expect(l.json.executionId).toBe(id);
    expect((await execution(id)).agent_id).toBe(b.agentId);
  });

  it("answers 204 at once for capacity 0", async () => {
    const a = await newAgent("cap0");
    await newExecution("cap0", await newJob("cap0"));
    const r = await call(a, "POST", "/agent/lease", { capacity: 0 });
    expect(r.status).toBe(204);
    expect((await dispatcher(dispatcherKey("cap0", null)).snapshot()).queued).toHaveLength(1);
  });

  it("takes a lease poll without a body (defaults)", async () => {
    const a = await newAgent("nobody");
    const id = await newExecution("nobody", await newJob("nobody"));
    const r = await api("POST", "/agent/lease", { token: a.credential });
    expect(r.status).toBe(200);
    expect(r.json.executionId).toBe(id);
  });
});
