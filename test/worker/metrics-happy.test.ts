import { env } from "cloudflare:test";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { lease, newAgent, newExecution, newJob } from "./agent-fixtures";

interface Family {
  name: string;
  type: string;
  help: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}

async function scrape(): Promise<Map<string, Family>> {
  const r = await api("GET", "/metrics", { token: await token("*", "viewer") });
  expect(r.status, r.text).toBe(200);
  const families = parsePrometheusTextFormat(r.text) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

const value = (f: Family | undefined, labels: Record<string, string> = {}) =>
  Number(f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? NaN);

describe("GET /metrics (happy)", () => {
  it("counts executions by status, pending work per account and location with its age, and agents online and offline", async () => {
    // Nothing yet: every status is there, at 0; no queue, no agent.
    let m = await scrape();
    expect(m.get("runner_executions")!.type).toBe("GAUGE");
    expect(m.get("runner_executions")!.metrics).toHaveLength(10);
    expect(value(m.get("runner_executions"), { status: "PENDING" })).toBe(0);
    expect(m.get("runner_executions_pending")!.metrics).toEqual([]);
    expect(value(m.get("runner_executions_oldest_pending_age_seconds"))).toBe(0);
    expect(value(m.get("runner_agents_online"))).toBe(0);

    // Account "met": two pending executions in dc1 (the job's location), one of its agents takes one.
    const agent = await newAgent("met", { location: "dc1" });
    const dc1 = await newJob("met", { location: "dc1" });
    const e1 = await newExecution("met", dc1);
    const e2 = await newExecution("met", dc1);
    expect((await lease(agent, 0)).json.executionId).toBeOneOf([e1, e2]);
    // Account "met2": a job routed by its host's rnr_location, and one with no location at all.
    const byHost = await newJob("met2", { hosts: [{ id: "h1", hostVars: { rnr_location: "lab" } }] });
    await newExecution("met2", byHost);
    const anywhere = await newJob("met2");
    await newExecution("met2", anywhere);
    // An offline shared-pool agent, and an account agent not seen for two minutes.
    const shared = await newAgent(null);
    const stale = await newAgent("met2");
    await env.DB.prepare("UPDATE agents SET last_seen = ? WHERE id IN (?, ?)")
      .bind(Date.now() - 120_000, shared.agentId, stale.agentId)
      .run();
    // The oldest pending one has waited a minute.
    await env.DB.prepare("UPDATE executions SET updated_time = ? WHERE job_id = ?")
      .bind(Date.now() - 60_000, anywhere)
      .run();

    m = await scrape();
    const ex = m.get("runner_executions");
    expect(value(ex, { status: "PENDING" })).toBe(3);
    expect(value(ex, { status: "INITIALIZING" })).toBe(1);
    const pending = m.get("runner_executions_pending")!;
    expect(pending.type).toBe("GAUGE");
    expect(value(pending, { account: "met", location: "dc1" })).toBe(1);
    expect(value(pending, { account: "met2", location: "lab" })).toBe(1);
    expect(value(pending, { account: "met2", location: "" })).toBe(1);
    expect(pending.metrics).toHaveLength(3);
    const age = m.get("runner_executions_pending_oldest_age_seconds")!;
    expect(value(age, { account: "met2", location: "" })).toBeGreaterThanOrEqual(60);
    expect(value(age, { account: "met", location: "dc1" })).toBeLessThan(30);
    expect(value(m.get("runner_executions_oldest_pending_age_seconds"))).toBeGreaterThanOrEqual(60);

    const agents = m.get("runner_agents")!;
    expect(value(agents, { account: "met", location: "dc1", state: "online" })).toBe(1);
    expect(value(agents, { account: "met", location: "dc1", state: "offline" })).toBe(0);
    expect(value(agents, { account: "met2", location: "", state: "offline" })).toBe(1);
    expect(value(agents, { account: "~shared", location: "", state: "offline" })).toBe(1);
    expect(value(m.get("runner_agents_online"))).toBe(1);
    expect(value(m.get("runner_agents_offline"))).toBe(2);

    // A revoked agent is not counted.
    expect((await api("DELETE", `/minions/met2/${stale.agentId}`, { token: await token(["met2"]) })).status).toBe(204);
    expect(value((await scrape()).get("runner_agents_offline"))).toBe(1);
  });

  it("escapes label values as the text format wants", async () => {
    // Account aliases cannot hold quotes, but locations of jobs may hold what a location may hold.
    const job = await newJob("esc", { location: "a.b-c_d" });
    await newExecution("esc", job);
    const m = await scrape();
    expect(value(m.get("runner_executions_pending"), { account: "esc", location: "a.b-c_d" })).toBe(1);
  });
});
