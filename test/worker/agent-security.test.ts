import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { dispatcherKey } from "../../worker/domain/contracts";
import { executionClient } from "../../worker/domain/execution-client";
import { api, token } from "./helpers";
import { call, dispatcher, execution, held, lease, newAgent, newExecution, newJob, regToken, untilWaiting } from "./agent-fixtures";

/** Every per-execution call, naming `ref` (by default a lease nobody holds). */
const AGENT_CALLS = (id: string, ref = { attempt: 1, leaseId: crypto.randomUUID() }) =>
  [
    ["heartbeat", { ...ref }],
    ["status", { ...ref, status: "RUNNING" }],
    ["events", { ...ref, events: [{ seq: 1, timestamp: 1, event_type: "verbose", stdout: "injected\n" }] }],
    ["release", { ...ref }],
  ].map(([what, body]) => [`/agent/executions/${id}/${what}`, body] as const);

function expect401(r: { status: number; headers: Headers; json: any }) {
  expect(r.status).toBe(401);
  expect(r.headers.get("content-type")).toContain("application/problem+json");
  expect(r.headers.get("www-authenticate")).toMatch(/^Bearer realm="runner"/);
}

describe("agent protocol (security)", () => {
  it("answers 401 without a valid agent credential", async () => {
    const a = await newAgent("creds");
    const [, agentId, secret] = /^rac_([0-9a-f-]{36})_(.+)$/.exec(a.credential)!;
    const flipped = secret!.startsWith("A") ? `B${secret!.slice(1)}` : `A${secret!.slice(1)}`;
    const bad = [
      null, // no header
      "rac_garbage",
      `rac_${agentId}_${flipped}`, // right agent, wrong secret
      `rac_${crypto.randomUUID()}_${secret}`, // unknown agent, a real secret
      await token(["creds"], "admin"), // a user JWT is not an agent credential
    ];
    for (const t of bad) {
      expect401(await api("POST", "/agent/lease", { token: t, body: { waitMs: 0 } }));
      expect401(await api("POST", `/agent/executions/${crypto.randomUUID()}/heartbeat`, { token: t, body: { attempt: 1 } }));
    }
  });

  it("refuses registration without a valid registration or operator token", async () => {
    const t = await regToken("regsec");
    const list = await api("GET", "/minions/regsec/tokens", { token: await token(["regsec"], "admin") });
    const id = list.json.results[0].id;
    expect((await api("DELETE", `/minions/regsec/tokens/${id}`, { token: await token(["regsec"], "admin") })).status).toBe(204);
    const unauthenticated: Record<string, unknown>[] = [{ token: t } /* revoked */, { token: "rrt_not-a-token" }, {}];
    for (const body of unauthenticated) expect401(await api("POST", "/agent/register", { token: null, body }));
    // A valid JWT that is not an operator's (accounts "*", role admin) may not join the shared pool.
    for (const bearer of [await token(["regsec"], "admin"), await token("*", "user")]) {
      expect((await api("POST", "/agent/register", { token: bearer, body: {} })).status).toBe(403);
    }
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM agents WHERE account_alias = 'regsec'").first<{ n: number }>();
    expect(rows!.n).toBe(0);
  });

  it("an agent touches only executions it holds: others get 409 abandon and change nothing", async () => {
    const owner = await newAgent("iso");
    const peer = await newAgent("iso");
    const foreign = await newAgent("iso-other");
    const id = await newExecution("iso", await newJob("iso"));
    expect((await lease(owner)).json.executionId).toBe(id);
    // Even naming the owner's lease (as if its id had leaked), another agent is refused.
    for (const intruder of [peer, foreign]) {
      for (const [path, body] of AGENT_CALLS(id, held(id))) {
        const r = await call(intruder, "POST", path, body);
        expect(r.status).toBe(409);
        expect(r.json.command).toBe("abandon");
      }
    }
    // An execution nobody holds (or that does not exist) is refused the same way.
    for (const other of [crypto.randomUUID(), "not-an-execution-id", id.toUpperCase()]) {
      for (const [path, body] of AGENT_CALLS(other)) {
        const r = await call(owner, "POST", path, body);
        expect(r.status, path).toBe(409);
        expect(r.json.command).toBe("abandon");
      }
    }
    const v = await execution(id);
    expect(v).toMatchObject({ status: "INITIALIZING", agent_id: owner.agentId });
    const events = await executionClient(env, id).events(undefined, 0, 0, 100);
    expect(JSON.stringify(events)).not.toContain("injected");
  });

  it("an agent never receives another account's work", async () => {
    const mine = await newAgent("acct-a");
    const theirs = await newAgent("acct-b");
    const id = await newExecution("acct-a", await newJob("acct-a"));
    expect((await lease(theirs, 100)).status).toBe(204);
    expect((await execution(id)).status).toBe("PENDING");
    expect((await lease(mine)).json.executionId).toBe(id);
  });

  it("a revoked agent gets 401 on everything and its leases are lost at once", async () => {
    const bad = await newAgent("revoke");
    const good = await newAgent("revoke");
    const job = await newJob("revoke");
    const running = await newExecution("revoke", job);
    const initializing = await newExecution("revoke", job);
    expect((await lease(bad)).json.executionId).toBe(running);
    expect((await call(bad, "POST", `/agent/executions/${running}/status`, { ...held(running), status: "RUNNING" })).status).toBe(200);
    expect((await lease(bad)).json.executionId).toBe(initializing);

    // One more poll of the agent is open while it is revoked.
    const key = dispatcherKey("revoke", null);
    const open = lease(bad, 20_000);
    await untilWaiting(key, 1);

    const del = await api("DELETE", `/minions/revoke/${bad.agentId}`, { token: await token(["revoke"], "admin") });
    expect(del.status).toBe(204);
    // The open poll is answered with nothing, and nothing more is handed to it.
    expect((await open).status).toBe(204);
    expect((await dispatcher(key).snapshot()).waiting).toEqual([]);

    expect(await execution(running)).toMatchObject({ status: "FAILURE", reason: "agent_revoked" });
    const back = await execution(initializing);
    expect(back.status).toBe("PENDING");
    expect(back.agent_id).toBeNull();

    expect401(await lease(bad, 0));
    for (const [path, body] of AGENT_CALLS(running)) expect401(await call(bad, "POST", path, body));
    expect401(await call(bad, "POST", `/agent/executions/${initializing}/heartbeat`, { ...held(initializing) }));

    // The work it held goes to another agent.
    const l = await lease(good);
    expect(l.status).toBe(200);
    expect(l.json.executionId).toBe(initializing);
  });
});
