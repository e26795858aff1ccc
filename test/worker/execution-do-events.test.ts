import { env, runDurableObjectAlarm } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { AgentEvent } from "../../worker/schemas/execution";
import { AGENT, alarmOf, executionIn, failure, indexRow, newJob, object, ref, report, stub } from "./execution-fixtures";

/** Event uploads (never twice, always in order), the counters they carry, and the index write-through. */
const ALIAS = "events";
let jobId: string;
beforeAll(async () => {
  jobId = await newJob(ALIAS, { hosts: [{ id: "web1" }, { id: "web2" }] });
});

const ev = (seq: number, extra: Partial<AgentEvent> = {}): AgentEvent => ({
  seq,
  timestamp: 1_700_000_000_000 + seq,
  event_type: "runner_on_ok",
  host: "web1",
  task: `task ${seq}`,
  play: "site",
  stdout: `ok: [web1] ${seq}\n`,
  data: { n: seq },
  ...extra,
});
const upload = async (id: string, events: AgentEvent[]) => stub(id).uploadEvents(AGENT, { ...(await ref(id)), events });
/** The agent events stored, as their agent seq numbers (from `data.n`), in sequence order (Runner's own execution_* events left out). */
async function stored(id: string): Promise<number[]> {
  const { results } = await stub(id).events(undefined, 0, 0, 100);
  return results.filter((e) => !e.event_type.startsWith("execution_")).map((e) => (JSON.parse(e.data!) as { n: number }).n);
}

describe("uploads", () => {
  it("a retried batch is acknowledged again and stored once", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    expect(await upload(id, [ev(1), ev(2), ev(3)])).toMatchObject({ acceptedThrough: 3, command: null });
    expect(await upload(id, [ev(1), ev(2), ev(3)])).toMatchObject({ acceptedThrough: 3 });
    expect(await upload(id, [ev(2), ev(3), ev(4)])).toMatchObject({ acceptedThrough: 4 });
    expect(await stored(id)).toEqual([1, 2, 3, 4]);
  });

  it("a batch that arrives early is held until the gap fills, then stored in order", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    expect((await upload(id, [ev(1)])).acceptedThrough).toBe(1);
    expect((await upload(id, [ev(5), ev(6)])).acceptedThrough).toBe(1);
    expect((await upload(id, [ev(3), ev(4)])).acceptedThrough).toBe(1);
    expect(await stored(id)).toEqual([1]);
    // A retry of a held batch changes nothing either.
    expect((await upload(id, [ev(5), ev(6)])).acceptedThrough).toBe(1);
    expect((await upload(id, [ev(2)])).acceptedThrough).toBe(6);
    expect(await stored(id)).toEqual([1, 2, 3, 4, 5, 6]);
    const { results } = await stub(id).events(undefined, 0, 0, 100);
    expect(results.map((e) => e.sequence)).toEqual(results.map((_, i) => i + 1)); // dense, in order
  });

  it("a batch given out of order inside itself is stored in seq order", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    expect((await upload(id, [ev(3), ev(1), ev(2)])).acceptedThrough).toBe(3);
    expect(await stored(id)).toEqual([1, 2, 3]);
  });

  it("answers the pending command, and refuses other agents with abandon", async () => {
    const id = await executionIn(ALIAS, jobId, "STOPPING");
    expect(await upload(id, [ev(1)])).toMatchObject({ acceptedThrough: 1, command: "stop" });
    const err = await failure(stub(id).uploadEvents("intruder", { ...(await ref(id)), events: [ev(2)] }));
    expect(err).toMatchObject({ status: 409, extensions: { command: "abandon" } });
    expect(await stored(id)).toEqual([1]);
  });

  it("keeps the event's fields: type, host, task, play, text and data", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await upload(id, [
      ev(1, {
        event_type: "runner_on_failed",
        host: "web2",
        task: "restart nginx",
        play: "web",
        stdout: "fatal: [web2]: FAILED!\n",
        data: { msg: "boom", rc: 1 },
      }),
    ]);
    const { results } = await stub(id).events(undefined, 0, 0, 100);
    const e = results.find((r) => r.event_type === "runner_on_failed")!;
    expect(e).toMatchObject({ host: "web2", task: "restart nginx", play: "web", message: "fatal: [web2]: FAILED!\n", timestamp: 1_700_000_000_001 });
    expect(JSON.parse(e.data!)).toEqual({ msg: "boom", rc: 1 });
  });
});

describe("host stats", () => {
  it("come from playbook_on_stats (the agent callback's shape), and the final report wins", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await upload(id, [
      ev(1, {
        event_type: "playbook_on_stats",
        host: null,
        task: null,
        data: {
          hosts: {
            web1: { ok: 2, changed: 1, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 },
            web2: { ok: 0, changed: 0, failed: 0, unreachable: 1 },
          },
          custom: { note: "set_stats" },
        },
      }),
    ]);
    const mid = await stub(id).view();
    expect(mid.host_stats).toEqual({
      web1: { ok: 2, changed: 1, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 },
      web2: { ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 1, rescued: 0, ignored: 0 },
    });
    expect(mid.failed_hosts).toEqual(["web2"]);
    await report(id, {
      status: "FAILURE",
      hostStats: { web2: { ok: 0, changed: 0, failed: 1, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 } },
      failedHosts: ["web2"],
      reason: "playbook_failed",
    });
    const end = await stub(id).view();
    expect(end.host_stats.web2!.failed).toBe(1);
    expect(end.host_stats.web2!.unreachable).toBe(0);
    expect(end.host_stats.web1!.ok).toBe(2);
    expect(end.failed_hosts).toEqual(["web2"]);
  });

  it("also reads a bare {host: counters} map with Ansible's own names (failures, dark)", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await upload(id, [ev(1, { event_type: "playbook_on_stats", data: { web1: { ok: 1, failures: 2 }, web2: { ok: 1, dark: 1 } } })]);
    const v = await stub(id).view();
    expect(v.host_stats.web1).toMatchObject({ ok: 1, failed: 2 });
    expect(v.host_stats.web2).toMatchObject({ ok: 1, unreachable: 1 });
    expect(v.failed_hosts.sort()).toEqual(["web1", "web2"]);
  });

  it("repositoryLog is kept, alone or with a status", async () => {
    const id = await executionIn(ALIAS, jobId, "INITIALIZING");
    const log = { commit: "abc123", author: "Ann", author_email: "ann@example.com", date: 1_700_000_000_000, message: "fix", branch: "main" };
    expect(await report(id, { repositoryLog: log })).toMatchObject({ status: "INITIALIZING" });
    expect((await stub(id).view()).repository_log).toEqual(log);
  });
});

describe("the D1 index", () => {
  it("matches the object after every change", async () => {
    const id = await executionIn(ALIAS, jobId, "PENDING");
    const check = async () => {
      const view = await stub(id).view();
      const row = (await indexRow(id))!;
      expect(JSON.parse(row.snapshot)).toEqual(view);
      expect(row.status).toBe(view.status);
      expect(row.agent_id).toBe(view.agent_id);
      expect(row.reason).toBe(view.reason);
    };
    await check();
    await stub(id).grantLease(AGENT);
    await check();
    await report(id, { status: "RUNNING", repositoryLog: { commit: "c0ffee" } });
    await check();
    await upload(id, [ev(1, { event_type: "playbook_on_stats", data: { web1: { ok: 1 } } })]);
    await check();
    await stub(id).stop({ accountAlias: ALIAS }, 0);
    await check();
    await report(id, { status: "STOPPED" });
    await check();
    expect((await indexRow(id))!.event_count).toBe(await stub(id).eventCount());
  });

  it("never takes an older version", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    const row = (await indexRow(id))!;
    // A stale write (as a delayed retry would be) does not land.
    await env.DB.prepare(
      `INSERT INTO executions (id, account_alias, job_id, status, created_time, updated_time, version, snapshot) VALUES (?, ?, ?, 'PENDING', 0, 0, 1, '{}')
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version WHERE excluded.version > executions.version`,
    )
      .bind(id, ALIAS, jobId)
      .run();
    expect((await indexRow(id))!.status).toBe("RUNNING");
    expect((await indexRow(id))!.version).toBe(row.version);
  });

  it("a failed write-through is retried from the alarm until the index matches", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await env.DB.exec("ALTER TABLE executions RENAME TO executions_away");
    try {
      await report(id, { status: "SUCCESS" }); // the object moves on; the index cannot follow yet
    } finally {
      await env.DB.exec("ALTER TABLE executions_away RENAME TO executions");
    }
    expect((await stub(id).view()).status).toBe("SUCCESS");
    expect((await indexRow(id))!.status).toBe("RUNNING");
    const retryAt = await alarmOf(id);
    expect(retryAt).not.toBeNull(); // a terminal execution has no deadline left but the retry
    await runDurableObjectAlarm(object(id));
    const row = (await indexRow(id))!;
    expect(row.status).toBe("SUCCESS");
    expect(JSON.parse(row.snapshot)).toEqual(await stub(id).view());
    expect(await alarmOf(id)).toBeNull();
  });
});
