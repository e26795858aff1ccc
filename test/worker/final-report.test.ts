import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { call, execution, held, lease, newAgent, type TestAgent } from "./agent-fixtures";

/**
 * The final status report may carry the run's last events (the lease's `reportEvents`): one call
 * where there were two at the end of every run. They are stored as an upload stores them, before
 * the status applies.
 */
const ALIAS = "final";
const fields = (r: { json: any }) => ((r.json?.errors ?? []) as { field: string }[]).map((e) => e.field).sort();
const ev = (seq: number, extra: Record<string, unknown> = {}) => ({ seq, timestamp: Date.now(), event_type: "verbose", stdout: `line ${seq}\n`, ...extra });

/** A started execution of a fresh job, RUNNING on `agent` with one event uploaded. */
async function running(agent: TestAgent): Promise<{ id: string; base: string; user: string; lease: Record<string, unknown> }> {
  const admin = await token([ALIAS], "admin");
  const job = await api("POST", `/jobs/${ALIAS}`, { token: admin, body: { playbook: btoa("- hosts: all\n  tasks: []\n"), hosts: [{ id: "web1" }] } });
  const id = (await api("POST", `/jobs/${ALIAS}/${job.json.id}/start`, { token: admin })).json.execution_id as string;
  const l = await lease(agent);
  expect(l.json.executionId).toBe(id);
  const base = `/agent/executions/${id}`;
  expect((await call(agent, "POST", `${base}/status`, { ...held(id), status: "RUNNING" })).status).toBe(200);
  expect((await call(agent, "POST", `${base}/events`, { ...held(id), events: [ev(1, { event_type: "playbook_on_start" })] })).json.acceptedThrough).toBe(1);
  return { id, base, user: `/jobs/${ALIAS}/${job.json.id}/executions/${id}`, lease: l.json };
}

async function eventsOf(path: string): Promise<{ sequence: number; event_type: string; message: string }[]> {
  return (await api("GET", `${path}/events?size=100`, { token: await token([ALIAS], "viewer") })).json.results;
}

describe("the final report with the run's last events (happy)", () => {
  it("stores the tail, then ends the run, in one call: the answer says how far, the stats come from the tail, the status event follows the tail", async () => {
    const agent = await newAgent(ALIAS);
    const { id, base, user, lease: l } = await running(agent);
    expect(l.reportEvents).toBe(true);

    const report = {
      ...held(id),
      status: "SUCCESS",
      events: [
        ev(2, { event_type: "runner_on_ok", host: "web1", task: "ping", stdout: "ok: [web1]\n" }),
        ev(3, { event_type: "playbook_on_stats", stdout: "PLAY RECAP\n", data: { web1: { ok: 1 } } }),
      ],
    };
    const r = await call(agent, "POST", `${base}/status`, report);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ status: "SUCCESS", acceptedThrough: 3, command: null });

    const view = await execution(id);
    expect(view.status).toBe("SUCCESS");
    expect(view.host_stats).toMatchObject({ web1: { ok: 1, failed: 0 } });
    const events = await eventsOf(user);
    const ok = events.findIndex((e) => e.event_type === "runner_on_ok");
    const stats = events.findIndex((e) => e.event_type === "playbook_on_stats");
    const ended = events.findIndex((e) => /SUCCESS/.test(e.message ?? "") && e.event_type !== "runner_on_ok");
    expect(ok).toBeGreaterThan(0);
    expect(stats).toBeGreaterThan(ok);
    expect(ended).toBeGreaterThan(stats);
    const log = await api("GET", `${user}/log`, { token: await token([ALIAS], "viewer") });
    expect(log.text).toContain("ok: [web1]\nPLAY RECAP\n");

    // Its answer was lost and the agent sends it again: acknowledged, and nothing is stored twice.
    const again = await call(agent, "POST", `${base}/status`, report);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ status: "SUCCESS", acceptedThrough: 3 });
    expect((await eventsOf(user)).length).toBe(events.length);
  });

  it("a report without events answers no acceptedThrough (as before)", async () => {
    const agent = await newAgent(ALIAS);
    const { id, base } = await running(agent);
    const r = await call(agent, "POST", `${base}/status`, { ...held(id), status: "FAILURE", reason: "playbook_failed" });
    expect(r.status).toBe(200);
    expect(r.json).not.toHaveProperty("acceptedThrough");
    expect((await execution(id)).status).toBe("FAILURE");
  });
});

describe("the final report with the run's last events (error)", () => {
  it("a refused event is a 400 naming it, and nothing changes: no event stored, the run still RUNNING", async () => {
    const agent = await newAgent(ALIAS);
    const { id, base, user } = await running(agent);
    const before = await eventsOf(user);
    const bad: [Record<string, unknown>, string[]][] = [
      [{ status: "SUCCESS", events: [ev(2), ev(3, { event_type: "Not A Callback" })] }, ["events.1.event_type"]],
      [{ status: "SUCCESS", events: [ev(2, { seq: 0 })] }, ["events.0.seq"]],
      [{ status: "SUCCESS", events: "ev" }, ["events"]],
      // Events go with a status: a repository log alone does not carry them.
      [{ repositoryLog: { commit: "abc", branch: "main", message: "m", author: "a" }, events: [ev(2)] }, ["events"]],
    ];
    for (const [patch, named] of bad) {
      const r = await call(agent, "POST", `${base}/status`, { ...held(id), ...patch });
      expect(r.status, JSON.stringify(patch)).toBe(400);
      expect(fields(r), JSON.stringify(patch)).toEqual(named);
    }
    expect((await execution(id)).status).toBe("RUNNING");
    expect(await eventsOf(user)).toEqual(before);
  });

  it("events from an agent that does not hold the lease are refused with the report (409 abandon), and not stored", async () => {
    const agent = await newAgent(ALIAS);
    const { id, base, user } = await running(agent);
    const before = await eventsOf(user);
    const r = await call(agent, "POST", `${base}/status`, { attempt: held(id).attempt, leaseId: "not-the-lease", status: "SUCCESS", events: [ev(2)] });
    expect(r.status).toBe(409);
    expect(r.json.command).toBe("abandon");
    expect(await eventsOf(user)).toEqual(before);
    expect((await execution(id)).status).toBe("RUNNING");
  });
});
