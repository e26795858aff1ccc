import { describe, expect, it } from "vitest";
import { MAX_EVENTS_PER_BATCH } from "../../worker/schemas/execution";
import { api } from "./helpers";
import { call, execution, held, lease, newAgent, newExecution, newJob, regToken } from "./agent-fixtures";

const fields = (r: { json: any }) => (r.json.errors as { field: string }[]).map((e) => e.field).sort();

describe("agent protocol (bad input)", () => {
  it("register: 400 naming each bad field; not JSON is a 400 too", async () => {
    const t = await regToken("bad-reg");
    const r = await api("POST", "/agent/register", { token: null, body: { token: t, name: "", concurrency: 0, location: "x".repeat(65) } });
    expect(r.status).toBe(400);
    expect(r.headers.get("content-type")).toContain("application/problem+json");
    expect(fields(r)).toEqual(["concurrency", "location", "name"]);
    const nj = await api("POST", "/agent/register", { token: null, body: "{not json" });
    expect(nj.status).toBe(400);
  });

  it("lease and execution calls: 400 naming each bad field, and nothing changes", async () => {
    const a = await newAgent("bad-calls");
    const id = await newExecution("bad-calls", await newJob("bad-calls"));
    const l = await call(a, "POST", "/agent/lease", { waitMs: -1, capacity: "two", running: "x" });
    expect(l.status).toBe(400);
    expect(fields(l)).toEqual(["capacity", "running", "waitMs"]);
    expect((await execution(id)).status).toBe("PENDING");

    expect((await lease(a)).json.executionId).toBe(id);
    const base = `/agent/executions/${id}`;
    const hb = await call(a, "POST", `${base}/heartbeat`, { ...held(id), attempt: 0 });
    expect(hb.status).toBe(400);
    expect(fields(hb)).toEqual(["attempt"]);
    const st = await call(a, "POST", `${base}/status`, { ...held(id), status: "DONE" });
    expect(st.status).toBe(400);
    expect(fields(st)).toEqual(["status"]);
    const ev = await call(a, "POST", `${base}/events`, { ...held(id), events: [{ seq: 0, event_type: "Bad Type" }] });
    expect(ev.status).toBe(400);
    expect(fields(ev)).toEqual(["events.0.event_type", "events.0.seq", "events.0.timestamp"]);
    const many = { ...held(id), events: Array.from({ length: MAX_EVENTS_PER_BATCH + 1 }, (_, i) => ({ seq: i + 1, timestamp: 1, event_type: "verbose" })) };
    const tooMany = await call(a, "POST", `${base}/events`, many);
    expect(tooMany.status).toBe(400);
    expect(fields(tooMany)).toEqual(["events"]);
    // Result data nested beyond what can be stored is refused as input, not a 500.
    const deep = 100_000;
    const nested = await call(
      a,
      "POST",
      `${base}/events`,
      `{"attempt":1,"leaseId":"${held(id).leaseId}","events":[{"seq":1,"timestamp":1,"event_type":"runner_on_ok","data":{"x":${"[".repeat(deep)}${"]".repeat(deep)}}}]}`,
    );
    expect(nested.status).toBe(400);
    expect(fields(nested)).toEqual(["events.0.data"]);
    const rel = await call(a, "POST", `${base}/release`, {});
    expect(rel.status).toBe(400);
    expect(fields(rel)).toEqual(["attempt", "leaseId"]);
    expect(await execution(id)).toMatchObject({ status: "INITIALIZING", agent_id: a.agentId });
  });

  it("a report the state machine forbids is a 409", async () => {
    const a = await newAgent("bad-state");
    const id = await newExecution("bad-state", await newJob("bad-state"));
    expect((await lease(a)).status).toBe(200);
    const r = await call(a, "POST", `/agent/executions/${id}/status`, { ...held(id), status: "SUCCESS" });
    expect(r.status).toBe(409);
    expect((await execution(id)).status).toBe("INITIALIZING");
  });
});
