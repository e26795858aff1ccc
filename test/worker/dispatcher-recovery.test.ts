import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { dispatcherKey } from "../../worker/domain/contracts";
import type { Dispatcher } from "../../worker/index";
import { call, dispatcher, held, lease, newAgent, newExecution, newJob } from "./agent-fixtures";

describe("dispatcher safety nets", () => {
  it("frees a slot whose `finished` never arrived, once the executions index shows it ended", async () => {
    const a = await newAgent("lost");
    const job = await newJob("lost");
    const done = await newExecution("lost", job);
    const live = await newExecution("lost", job);
    expect((await lease(a)).json.executionId).toBe(done);
    expect((await lease(a)).json.executionId).toBe(live);
    await call(a, "POST", `/agent/executions/${done}/status`, { ...held(done), status: "RUNNING" });
    await call(a, "POST", `/agent/executions/${done}/status`, { ...held(done), status: "SUCCESS" });

    const key = dispatcherKey("lost", null);
    const stub = dispatcher(key);
    expect((await stub.snapshot()).leased.map((l) => l.executionId)).toEqual([live]);
    // As if the `finished` call for `done` had been lost, and both rows were last checked long ago.
    const old = Date.now() - 10 * 60_000;
    await runInDurableObject(stub, (_o: Dispatcher, state) => {
      state.storage.sql.exec(
        `INSERT INTO leased (execution_id, account_alias, job_id, agent_id, leased_at, checked_at) VALUES (?, 'lost', ?, ?, ?, ?)`,
        done,
        job,
        a.agentId,
        old,
        old,
      );
      state.storage.sql.exec(`UPDATE leased SET checked_at = ?`, old);
    });
    expect((await stub.snapshot()).leased).toHaveLength(2);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    // The ended one is freed; the one still running keeps its slot.
    expect((await stub.snapshot()).leased.map((l) => l.executionId)).toEqual([live]);
    const checked = await runInDurableObject(
      stub,
      (_o: Dispatcher, state) => state.storage.sql.exec<{ checked_at: number }>(`SELECT checked_at FROM leased`).one().checked_at,
    );
    expect(checked).toBeGreaterThan(old);
  });
});
