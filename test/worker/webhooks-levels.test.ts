import { env, evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { owed } from "../../worker/execution/webhooks";
import type { AgentEvent } from "../../worker/schemas/execution";
import { AGENT, newJob, object, ref, report, start, stub } from "./execution-fixtures";
import { api, token } from "./helpers";
import { RECEIVER, Receiver, signedBy } from "./webhook-fixtures";

/**
 * Which events each level delivers, end to end inside workerd: a run through the real routes and
 * Execution object, its deliveries through the real CALLBACKS queue and consumer, to a receiver.
 */
const ALIAS = "hooks-levels";
const receiver = new Receiver();
beforeAll(() => {
  receiver.install();
});
afterAll(() => receiver.uninstall());

/** A run's events as the agent's callback plugin sends them (agent/ansible/callback_plugins). */
const RUN: Omit<AgentEvent, "seq" | "timestamp">[] = [
  { event_type: "playbook_on_start", stdout: "", data: { playbook: "site.yml" } },
  { event_type: "playbook_on_play_start", play: "site", stdout: "\nPLAY [site] ***\n", data: { name: "site" } },
  { event_type: "playbook_on_task_start", play: "site", task: "ping", stdout: "\nTASK [ping] ***\n", data: { name: "ping" } },
  { event_type: "runner_on_ok", play: "site", task: "ping", host: "web1", stdout: "ok: [web1]\n", data: { changed: false } },
  { event_type: "runner_on_failed", play: "site", task: "ping", host: "web2", stdout: "fatal: [web2]: FAILED!\n", data: { msg: "boom", ignore_errors: false } },
  {
    event_type: "runner_on_failed",
    play: "site",
    task: "try",
    host: "web1",
    stdout: "fatal: [web1]: FAILED! ...ignoring\n",
    data: { msg: "meh", ignore_errors: true },
  },
  { event_type: "runner_on_unreachable", play: "site", task: "ping", host: "web3", stdout: "fatal: [web3]: UNREACHABLE!\n", data: { msg: "no route" } },
  { event_type: "runner_on_async_failed", play: "site", task: "long", host: "web1", stdout: "ASYNC FAILED on web1\n", data: { msg: "timeout" } },
  {
    event_type: "playbook_on_stats",
    stdout: "\nPLAY RECAP ***\n",
    data: {
      hosts: {
        web1: { ok: 1, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 1 },
        web2: { ok: 0, changed: 0, failed: 1, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 },
        web3: { ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 1, rescued: 0, ignored: 0 },
      },
    },
  },
];

async function run(callbacks: { url: string; level: string }[]): Promise<{ jobId: string; id: string }> {
  const jobId = await newJob(ALIAS, { hosts: [{ id: "web1" }, { id: "web2" }, { id: "web3" }], callbacks });
  const id = await start(ALIAS, jobId);
  expect(await stub(id).grantLease(AGENT)).not.toBeNull();
  await report(id, { status: "RUNNING" });
  const events = RUN.map((e, i) => ({ ...e, seq: i + 1, timestamp: Date.now() }) as AgentEvent);
  await stub(id).uploadEvents(AGENT, { ...(await ref(id)), events });
  await report(id, { status: "FAILURE", failedHosts: ["web2", "web3"], reason: "playbook_failed" });
  return { jobId, id };
}

const kinds = (rs: { json: any }[]) => rs.map((r) => (r.json.event_type === "execution_status" ? `status:${r.json.event.data.status}` : r.json.event_type));

describe("webhook levels (happy)", () => {
  it("DEBUG gets every event, ERROR the failures and the failed end, RESULT the final status; each in sequence, signed", async () => {
    const { jobId, id } = await run([
      { url: `${RECEIVER}/debug`, level: "DEBUG" },
      { url: `${RECEIVER}/error`, level: "ERROR" },
      { url: `${RECEIVER}/result`, level: "RESULT" },
    ]);
    const debug = await receiver.waitFor("/debug", 13);
    const error = await receiver.waitFor("/error", 4);
    const result = await receiver.waitFor("/result", 1);
    const bySeq = (rs: typeof debug) => [...rs].sort((a, b) => a.json.sequence - b.json.sequence);

    expect(kinds(bySeq(debug))).toEqual([
      "status:PENDING",
      "execution_waiting", // why it waits, as its dispatcher told it: a status event too
      "status:INITIALIZING",
      "status:RUNNING",
      ...RUN.map((e) => e.event_type),
      "status:FAILURE",
    ]);
    expect(kinds(bySeq(error))).toEqual(["runner_on_failed", "runner_on_unreachable", "runner_on_async_failed", "status:FAILURE"]);
    expect(bySeq(error)[0]!.json.event.host).toBe("web2"); // the ignored failure on web1 is not an error
    expect(kinds(result)).toEqual(["status:FAILURE"]);

    // Per execution and URL: 1, 2, 3, … in event order, whatever order they arrived in.
    for (const rs of [debug, error, result]) {
      const sorted = bySeq(rs);
      expect(sorted.map((r) => r.json.sequence)).toEqual(sorted.map((_, i) => i + 1));
      const eventSeqs = sorted.map((r) => r.json.event.sequence);
      expect(eventSeqs).toEqual([...eventSeqs].sort((a, b) => a - b));
    }

    // The payload: ids, the event in the status service's shape, the execution on the final one only.
    const events = (await api("GET", `/jobs/${ALIAS}/${jobId}/executions/${id}/events`, { token: await token([ALIAS], "viewer") })).json.results;
    for (const r of debug) {
      expect(r.json).toMatchObject({ account_alias: ALIAS, job_id: jobId, execution_id: id, event_type: r.json.event.event_type });
      expect(r.json.event).toEqual(events.find((e: any) => e.sequence === r.json.event.sequence));
      expect(r.headers["runner-delivery"]).toBe(r.json.delivery_id);
      expect(r.headers["runner-event"]).toBe(r.json.event_type);
      expect(r.headers["user-agent"]).toMatch(/Runner/);
      expect(r.headers["content-type"]).toContain("application/json");
      expect(r.redirect).toBe("manual");
      if (r.json.event.event_type !== "execution_status" || r.json.event.data.status !== "FAILURE") expect(r.json).not.toHaveProperty("execution");
    }
    const final = result[0]!.json;
    expect(final.execution).toMatchObject({
      execution_id: id,
      status: "FAILURE",
      reason: "playbook_failed",
      failed_hosts: ["web2", "web3"],
      trigger: "api",
      schedule_id: null,
      host_stats: { web2: { failed: 1 }, web3: { unreachable: 1 } },
    });
    expect(final.execution.timers[0].end).toEqual(expect.any(Number));
    expect(final.event.data).toMatchObject({ status: "FAILURE", trigger: "api", schedule_id: null });

    // Signed with the account's secret, which an admin reads (and which never rides in a payload).
    const secret = (await api("GET", `/webhooks/${ALIAS}/secret`, { token: await token([ALIAS], "admin") })).json.secret as string;
    for (const r of [...debug, ...error, ...result]) {
      expect(await signedBy(r, secret)).toEqual([0]);
      expect(r.body).not.toContain(secret);
    }

    // And listed, delivered, with the delivery ids the receivers saw.
    const list = (await api("GET", `/jobs/${ALIAS}/${jobId}/executions/${id}/deliveries?size=100`, { token: await token([ALIAS], "viewer") })).json;
    expect(list.totalSize).toBe(19); // 14 at DEBUG (with the waiting reason), 4 at ERROR, 1 at RESULT
    expect(list.results.every((d: any) => d.status === "delivered" && d.attempts === 1 && d.last_response_code === 200)).toBe(true);
    expect(new Set(list.results.map((d: any) => d.delivery_id))).toEqual(new Set([...debug, ...error, ...result].map((r) => r.json.delivery_id)));
  });

  it("ERROR gets a stop by the TTL and a kill, not a stop a user asked for; RESULT gets each end", () => {
    const status = (s: string, reason: string | null = null) => JSON.stringify({ status: s, reason });
    const cases: [string, string | null, boolean, boolean][] = [
      ["SUCCESS", null, false, true],
      ["FAILURE", "playbook_failed", true, true],
      ["INIT_FAILURE", "clone_failed", true, true],
      ["KILLED", "killed", true, true],
      ["STOPPED", "ttl_expired", true, true],
      ["STOPPED", "stopped", false, true],
      ["RUNNING", null, false, false],
      ["STOPPING", "ttl_expired", false, false],
    ];
    for (const [s, reason, error, result] of cases) {
      expect(owed("ERROR", "execution_status", status(s, reason)), `${s} ${reason}`).toBe(error);
      expect(owed("RESULT", "execution_status", status(s, reason)), `${s} ${reason}`).toBe(result);
      expect(owed("DEBUG", "execution_status", status(s, reason))).toBe(true);
    }
    expect(owed("RESULT", "runner_on_failed", "{}")).toBe(false);
    expect(owed("ERROR", "runner_on_ok", "{}")).toBe(false);
  });

  it("a crash between storing an event and queueing its delivery loses nothing: the outbox's retry sends it", async () => {
    // The deliveries table unavailable: the event is stored, its delivery stays in the object's outbox.
    await env.DB.exec("ALTER TABLE deliveries RENAME TO deliveries_away");
    let id: string;
    let jobId: string;
    try {
      jobId = await newJob(ALIAS, { callbacks: [{ url: `${RECEIVER}/crash`, level: "DEBUG" }] });
      id = await start(ALIAS, jobId);
    } finally {
      await env.DB.exec("ALTER TABLE deliveries_away RENAME TO deliveries");
    }
    expect(receiver.at("/crash")).toHaveLength(0);
    // The object goes away with its memory; what it stored remains, and its alarm retries the outbox.
    await evictDurableObject(object(id));
    expect(await runDurableObjectAlarm(object(id))).toBe(true);
    const got = await receiver.waitFor("/crash", 1);
    // The PENDING status (and the waiting reason that follows it): none lost.
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(got.find((r) => r.json.sequence === 1)?.json).toMatchObject({
      execution_id: id,
      sequence: 1,
      event: { event_type: "execution_status", data: { status: "PENDING" } },
    });
    // The dispatcher was not held up meanwhile: the execution is queued.
    expect((await stub(id).view()).status).toBe("PENDING");
  });
});
