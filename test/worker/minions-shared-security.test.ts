import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { dispatcherKey } from "../../worker/domain/contracts";
import { api, token } from "./helpers";
import { call, dispatcher, execution, held, lease, newAgent, newExecution, newJob } from "./agent-fixtures";

/**
 * The shared pool's agents belong to no account: operators (accounts "*") list and revoke them
 * under /minions/~shared; to everyone else they do not exist. Revoking one loses its leases at once.
 */
const SHARED = dispatcherKey(null, null);
const ids = (r: { json: any }) => (r.json.results as { id: string }[]).map((a) => a.id);

describe("shared-pool agents (operators only)", () => {
  it("an operator lists a shared agent, revokes it, and its leases are lost at once (running: FAILURE agent_revoked; not started: PENDING)", async () => {
    const op = await token("*", "admin", "operator");
    const agent = await newAgent(null, { name: "pool-1" });
    const other = await newAgent(null, { name: "pool-2" });
    // An account without agents of its own runs on the shared pool.
    const job = await newJob("tenant");
    const running = await newExecution("tenant", job);
    const waiting = await newExecution("tenant", job);
    expect((await lease(agent)).json.executionId).toBe(running);
    expect((await call(agent, "POST", `/agent/executions/${running}/status`, { ...held(running), status: "RUNNING" })).status).toBe(200);
    expect((await lease(agent)).json.executionId).toBe(waiting);

    const list = await api("GET", "/minions/~shared", { token: await token("*", "viewer", "operator") });
    expect(list.status).toBe(200);
    expect(ids(list)).toEqual(expect.arrayContaining([agent.agentId, other.agentId]));
    const mine = list.json.results.find((a: { id: string }) => a.id === agent.agentId);
    expect(mine).toMatchObject({ name: "pool-1", online: true });
    expect([...mine.runningExecutions].sort()).toEqual([running, waiting].sort());
    expect((await api("GET", `/minions/~shared/${agent.agentId}`, { token: op })).json.id).toBe(agent.agentId);

    expect((await api("DELETE", `/minions/~shared/${agent.agentId}`, { token: op })).status).toBe(204);
    expect(await execution(running)).toMatchObject({ status: "FAILURE", reason: "agent_revoked" });
    expect(await execution(waiting)).toMatchObject({ status: "PENDING", agent_id: null });
    // Its credential is dead; the other shared agent gets the work back.
    expect((await lease(agent, 0)).status).toBe(401);
    expect((await call(agent, "POST", `/agent/executions/${running}/heartbeat`, held(running))).status).toBe(401);
    expect((await lease(other)).json.executionId).toBe(waiting);
    expect((await dispatcher(SHARED).snapshot()).waiting).toEqual([]);

    const after = await api("GET", "/minions/~shared", { token: op });
    expect(ids(after)).not.toContain(agent.agentId);
    expect((await api("GET", `/minions/~shared/${agent.agentId}`, { token: op })).status).toBe(404);
    expect((await api("DELETE", `/minions/~shared/${agent.agentId}`, { token: op })).status).toBe(404);
  });

  it("an account admin cannot see or revoke a shared agent: 404 everywhere, and the agent keeps working", async () => {
    const agent = await newAgent(null);
    const admin = await token(["acct"], "admin");
    expect((await api("GET", "/minions/~shared", { token: admin })).status).toBe(404);
    expect((await api("GET", `/minions/~shared/${agent.agentId}`, { token: admin })).status).toBe(404);
    expect((await api("DELETE", `/minions/~shared/${agent.agentId}`, { token: admin })).status).toBe(404);
    // Nor through the account's own routes.
    expect((await api("GET", `/minions/acct/${agent.agentId}`, { token: admin })).status).toBe(404);
    expect((await api("DELETE", `/minions/acct/${agent.agentId}`, { token: admin })).status).toBe(404);
    expect(ids(await api("GET", "/minions/acct", { token: admin }))).not.toContain(agent.agentId);
    // Not even an operator reaches it through an account's routes.
    const op = await token("*", "admin", "operator");
    expect((await api("DELETE", `/minions/acct/${agent.agentId}`, { token: op })).status).toBe(404);

    const row = await env.DB.prepare("SELECT revoked_time FROM agents WHERE id = ?").bind(agent.agentId).first<{ revoked_time: number | null }>();
    expect(row!.revoked_time).toBeNull();
    expect((await lease(agent, 0)).status).toBe(204);
  });

  it("an operator below admin may list but not revoke (403); no token is a 401", async () => {
    const agent = await newAgent(null);
    for (const role of ["viewer", "user"] as const) {
      const t = await token("*", role, "operator");
      expect((await api("GET", "/minions/~shared", { token: t })).status).toBe(200);
      expect((await api("DELETE", `/minions/~shared/${agent.agentId}`, { token: t })).status).toBe(403);
    }
    expect((await api("GET", "/minions/~shared", { token: null })).status).toBe(401);
    expect((await api("DELETE", `/minions/~shared/${agent.agentId}`, { token: agent.credential })).status).toBe(401);
    expect((await lease(agent, 0)).status).toBe(204);
  });

  it("an account's agent is not reachable as a shared one", async () => {
    const agent = await newAgent("own-pool");
    const op = await token("*", "admin", "operator");
    expect(ids(await api("GET", "/minions/~shared", { token: op }))).not.toContain(agent.agentId);
    expect((await api("GET", `/minions/~shared/${agent.agentId}`, { token: op })).status).toBe(404);
    expect((await api("DELETE", `/minions/~shared/${agent.agentId}`, { token: op })).status).toBe(404);
    expect((await lease(agent, 0)).status).toBe(204);
  });
});
