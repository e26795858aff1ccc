import { env, runDurableObjectAlarm } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { lostAgentWindowMs } from "../../worker/domain/contracts";
import { executionClient } from "../../worker/domain/execution-client";
import { call, execution, lease, newAgent, newExecution, newJob } from "./agent-fixtures";

/**
 * Every per-execution agent call names its lease id: the same agent handed the same execution (same
 * attempt) a second time must not have the first lease's calls accepted.
 */
const ALIAS = "relet";
const object = (id: string) => env.EXECUTION.get(env.EXECUTION.idFromName(id));
const logOf = async (id: string) => (await executionClient(env, id).logChunk(undefined, 0)).text;

afterEach(() => {
  vi.useRealTimers();
});

describe("a lease lost before the playbook started and leased again to the same agent", () => {
  it("refuses the old lease's heartbeat, events, status and release (409 abandon) and stores nothing from them", async () => {
    const agent = await newAgent(ALIAS);
    const id = await newExecution(ALIAS, await newJob(ALIAS));
    const first = await lease(agent);
    expect(first.json.executionId).toBe(id);
    const old = { attempt: first.json.attempt, leaseId: first.json.leaseId };
    const base = `/agent/executions/${id}`;
    expect((await call(agent, "POST", `${base}/heartbeat`, old)).status).toBe(200);
    expect(
      (await call(agent, "POST", `${base}/events`, { ...old, events: [{ seq: 1, timestamp: 1, event_type: "verbose", stdout: "first lease\n" }] })).status,
    ).toBe(200);

    // No heartbeat for the whole lost-agent window: the alarm takes it back (the playbook had not started).
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + lostAgentWindowMs(env) + 1);
    await runDurableObjectAlarm(object(id));
    expect(await execution(id)).toMatchObject({ status: "PENDING", agent_id: null });

    const second = await lease(agent);
    expect(second.json).toMatchObject({ executionId: id, attempt: old.attempt });
    expect(second.json.leaseId).not.toBe(old.leaseId);
    const now = { attempt: second.json.attempt, leaseId: second.json.leaseId };
    const eventsBefore = (await executionClient(env, id).events(undefined, 0, 0, 100)).totalSize;

    const stale: [string, Record<string, unknown>][] = [
      ["heartbeat", old],
      ["events", { ...old, events: [{ seq: 2, timestamp: 2, event_type: "verbose", stdout: "stale event\n" }] }],
      ["events", { ...old, events: [{ seq: 1, timestamp: 2, event_type: "verbose", stdout: "stale event\n" }] }],
      ["status", { ...old, status: "RUNNING" }],
      ["status", { ...old, status: "INIT_FAILURE", reason: "clone_failed", detail: "stale" }],
      ["status", { ...old, repositoryLog: { commit: "stale" } }],
      ["release", old],
    ];
    for (const [what, body] of stale) {
      const r = await call(agent, "POST", `${base}/${what}`, body);
      expect(r.status, `${what} ${JSON.stringify(body).slice(0, 80)}`).toBe(409);
      expect(r.json.command).toBe("abandon");
    }
    const v = await execution(id);
    expect(v).toMatchObject({ status: "INITIALIZING", agent_id: agent.agentId, repository_log: null });
    expect((await executionClient(env, id).events(undefined, 0, 0, 100)).totalSize).toBe(eventsBefore);
    expect(await logOf(id)).not.toContain("stale");

    // The current lease's calls work, its events numbered from 1 again.
    expect((await call(agent, "POST", `${base}/heartbeat`, now)).status).toBe(200);
    const up = await call(agent, "POST", `${base}/events`, { ...now, events: [{ seq: 1, timestamp: 3, event_type: "verbose", stdout: "second lease\n" }] });
    expect(up.json).toMatchObject({ acceptedThrough: 1 });
    expect((await call(agent, "POST", `${base}/status`, { ...now, status: "RUNNING" })).json.status).toBe("RUNNING");
    expect((await call(agent, "POST", `${base}/status`, { ...now, status: "SUCCESS" })).json.status).toBe("SUCCESS");
    const log = await logOf(id);
    expect(log).toContain("first lease\n");
    expect(log).toContain("second lease\n");
    expect(log).not.toContain("stale");

    // A retried terminal report is acknowledged only for the lease that ended the run.
    expect((await call(agent, "POST", `${base}/status`, { ...now, status: "SUCCESS" })).status).toBe(200);
    const late = await call(agent, "POST", `${base}/status`, { ...old, status: "SUCCESS" });
    expect(late.status).toBe(409);
    expect(late.json.command).toBe("abandon");
  });

  it("a call without a lease id is a 400 naming leaseId, and changes nothing", async () => {
    const agent = await newAgent(`${ALIAS}-2`);
    const id = await newExecution(`${ALIAS}-2`, await newJob(`${ALIAS}-2`));
    expect((await lease(agent)).status).toBe(200);
    for (const what of ["heartbeat", "status", "events", "release"]) {
      const body = what === "status" ? { attempt: 1, status: "RUNNING" } : what === "events" ? { attempt: 1, events: [] } : { attempt: 1 };
      const r = await call(agent, "POST", `/agent/executions/${id}/${what}`, body);
      expect(r.status).toBe(400);
      expect(r.json.errors.map((e: { field: string }) => e.field)).toEqual(["leaseId"]);
    }
    expect((await execution(id)).status).toBe("INITIALIZING");
  });
});
