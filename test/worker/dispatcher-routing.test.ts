import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ONLINE_WINDOW_MS } from "../../worker/domain/contracts";
import { routeExecution } from "../../worker/domain/dispatch";
import { api, token } from "./helpers";
import { execution, lease, newAgent, newExecution, newJob, untilWaiting } from "./agent-fixtures";

const route = (alias: string, location: string | null, hostLocations: string[] = []) => routeExecution(env, alias, { location, hostLocations });

describe("dispatcher routing", () => {
  it("no location: the shared pool while the account has no agents; its own default queue once it has any", async () => {
    expect(await route("r1", null)).toBe("shared");
    const located = await newAgent("r1", { location: "dc1" });
    // The account runs agents (elsewhere): its work, and the secrets in it, stay on its own queue.
    expect(await route("r1", null)).toBe("acct:r1:");
    expect(await routeExecution(env, "r1", { location: null, hostLocations: [] }, true)).toBe("shared"); // unless it may fall back
    const def = await newAgent("r1");
    expect(await route("r1", null)).toBe("acct:r1:");
    expect(await routeExecution(env, "r1", { location: null, hostLocations: [] }, true)).toBe("acct:r1:"); // online: no fallback needed
    for (const a of [def, located]) await api("DELETE", `/minions/r1/${a.agentId}`, { token: await token(["r1"], "admin") });
    expect(await route("r1", null)).toBe("shared"); // revoked agents do not count: it has none again
  });

  it("only agents seen within the online window count; sharedPoolFallback sends the work to the shared pool meanwhile", async () => {
    const def = await newAgent("r6");
    expect(await route("r6", null)).toBe("acct:r6:");
    await env.DB.prepare("UPDATE agents SET last_seen = ? WHERE id = ?")
      .bind(Date.now() - ONLINE_WINDOW_MS - 1_000, def.agentId)
      .run();
    expect(await route("r6", null)).toBe("acct:r6:"); // offline, but registered: it waits for it
    expect((await api("PUT", "/accounts/r6/settings", { token: await token(["r6"], "admin"), body: { sharedPoolFallback: true } })).status).toBe(200);
    expect(await route("r6", null)).toBe("shared");
    await env.DB.prepare("UPDATE agents SET last_seen = ? WHERE id = ?").bind(Date.now(), def.agentId).run();
    expect(await route("r6", null)).toBe("acct:r6:"); // back online: its own agents again
  });

  it("the job's location, else a host's rnr_location, picks that location's agents", async () => {
    expect(await route("r2", "dc1")).toBe("acct:r2:dc1");
    expect(await route("r2", null, ["dc2"])).toBe("acct:r2:dc2");
    expect(await route("r2", "dc1", ["dc2"])).toBe("acct:r2:dc1");
    expect(await route("r2", "  ", ["dc2"])).toBe("acct:r2:dc2");
  });

  it("end to end: each agent gets only its location's work; other work goes to the shared pool", async () => {
    const dc1 = await newAgent("r3", { location: "dc1" });
    const pool = await newAgent(null);
    // r3 has agents (in dc1), so its location-less work may use the shared pool only by its setting.
    expect((await api("PUT", "/accounts/r3/settings", { token: await token(["r3"], "admin"), body: { sharedPoolFallback: true } })).status).toBe(200);
    const inDc1 = await newExecution("r3", await newJob("r3", { location: "dc1" }));
    const byHost = await newExecution("r3", await newJob("r3", { hosts: [{ id: "web1", hostVars: { rnr_location: "dc1" } }] }));
    const anywhere = await newExecution("r3", await newJob("r3"));

    const p = await lease(pool, 1_000);
    expect(p.json.executionId).toBe(anywhere);
    expect((await lease(pool, 100)).status).toBe(204);
    expect((await lease(dc1, 1_000)).json.executionId).toBe(inDc1);
    expect((await lease(dc1, 1_000)).json.executionId).toBe(byHost);
    expect((await execution(anywhere)).agent_id).toBe(pool.agentId);
  });

  it("a start through the public API reaches the waiting agent of the job's location", async () => {
    const edge = await newAgent("r5", { location: "dc9" });
    const job = await newJob("r5", { location: "dc9" });
    const polling = lease(edge, 20_000);
    await untilWaiting("acct:r5:dc9", 1);
    const started = await api("POST", `/jobs/r5/${job}/start`, { token: await token(["r5"], "user"), body: {} });
    expect(started.status).toBe(200);
    const r = await polling;
    expect(r.status).toBe(200);
    expect(r.json.executionId).toBe(started.json.execution_id);
  });

  it("work for a location with no agent yet waits for one", async () => {
    const waiting = await newExecution("r4", await newJob("r4", { location: "edge" }));
    const def = await newAgent("r4");
    expect((await lease(def, 100)).status).toBe(204);
    expect((await execution(waiting)).status).toBe("PENDING");
    const edge = await newAgent("r4", { location: "edge" });
    expect((await lease(edge, 1_000)).json.executionId).toBe(waiting);
  });
});
