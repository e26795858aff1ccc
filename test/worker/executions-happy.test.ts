import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { dispatcherKey } from "../../worker/domain/contracts";
import { dispatcherStub } from "../../worker/domain/dispatch";
import { newAgent } from "./agent-fixtures";
import { api, token } from "./helpers";
import { AGENT, executionIn, newJob, ref, report, sleep, start, stub } from "./execution-fixtures";

/** The Executions API in the original's wire format, driven end to end. */
const ALIAS = "happy";
let jobId: string;
let t: string;
beforeAll(async () => {
  jobId = await newJob(ALIAS, { hosts: [{ id: "web1" }, { id: "web2" }], properties: { env: "prod", keep: 1 }, playbookTags: ["deploy"] });
  t = await token([ALIAS], "user");
});
const base = () => `/jobs/${ALIAS}/${jobId}`;

describe("start", () => {
  it("answers 200 with a PENDING execution in snake_case", async () => {
    const r = await api("POST", `${base()}/start`, { token: t });
    expect(r.status, r.text).toBe(200);
    const e = r.json;
    expect(Object.keys(e).sort()).toEqual(
      [
        "account_alias",
        "agent_id",
        "agent_unreachable_since",
        "attempt",
        "created_time",
        "execution_id",
        "failed_hosts",
        "host_stats",
        "is_vpn_established",
        "job_id",
        "links",
        "reason",
        "repository_log",
        "schedule_id",
        "scheduled_time",
        "status",
        "timers",
        "trigger",
        "waiting_reason",
      ].sort(),
    );
    expect(e.scheduled_time).toBeNull(); // only a schedule's executions have a slot
    expect(e).toMatchObject({
      job_id: jobId,
      account_alias: ALIAS,
      status: "PENDING",
      failed_hosts: [],
      host_stats: {},
      repository_log: null,
      is_vpn_established: false,
      agent_id: null,
      agent_unreachable_since: null,
      trigger: "api",
      schedule_id: null,
      reason: null,
      // The account has no agents (its work goes to the shared pool), and the shared pool has none here either.
      waiting_reason: "no agent registered for the shared pool",
      attempt: 1,
    });
    expect(e.timers).toHaveLength(1);
    expect(e.timers[0].end).toBeNull();
    expect(Math.abs(e.created_time - Date.now())).toBeLessThan(60_000);
    expect(e.links.self).toBe(`${base()}/executions/${e.execution_id}`);
    const got = await api("GET", e.links.self, { token: t });
    expect(got.status).toBe(200);
    expect(got.json).toEqual(e);
  });

  it("accepts an empty body with a JSON content type", async () => {
    const r = await api("POST", `${base()}/start`, { token: t, body: "" });
    expect(r.status, r.text).toBe(200);
  });

  it("merges the start overrides into the lease", async () => {
    const id = await start(ALIAS, jobId, {
      properties: { env: "staging", extra: true },
      playbookTags: ["hotfix"],
      check: true,
      diff: true,
      sshPrivateKey: btoa("START-KEY"),
      hosts: [{ id: "web2", sshPrivateKey: btoa("WEB2-KEY") }],
    });
    const lease = (await stub(id).grantLease(AGENT))!;
    expect(lease.job.properties).toEqual({ env: "staging", keep: 1, extra: true });
    expect(lease.job.playbookTags).toEqual(["hotfix"]);
    expect(lease).toMatchObject({ check: true, diff: true, limit: null, inventory: null, attempt: 1, jobId, accountAlias: ALIAS });
    expect(lease.job.sshPrivateKey).toBe(btoa("START-KEY"));
    expect(lease.job.hosts.find((h) => h.id === "web2")!.sshPrivateKey).toBe(btoa("WEB2-KEY"));
    expect(lease.secrets).toEqual(expect.arrayContaining([btoa("START-KEY"), btoa("WEB2-KEY")]));
    expect(lease.deadline).toBe((await stub(id).view()).created_time + 180 * 60_000);
  });

  it("with ?immediate=true on job create", async () => {
    const r = await api("POST", `/jobs/${ALIAS}?immediate=true`, { token: t, body: { name: "now", playbook: btoa("- hosts: all\n"), hosts: [{ id: "h" }] } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.execution).toMatchObject({ status: "PENDING", job_id: r.json.id, trigger: "api" });
  });
});

describe("lists", () => {
  const ALIAS2 = "lists";
  let jobA: string;
  let jobB: string;
  let ids: string[] = [];
  let t2: string;
  beforeAll(async () => {
    t2 = await token([ALIAS2], "viewer");
    jobA = await newJob(ALIAS2);
    jobB = await newJob(ALIAS2);
    ids = [];
    for (let i = 0; i < 5; i++) ids.push(await start(ALIAS2, i % 2 ? jobB : jobA));
    await api("POST", `/jobs/${ALIAS2}/${jobA}/executions/${ids[0]}/kill`, { token: await token([ALIAS2], "user") });
    await api("POST", `/jobs/${ALIAS2}/${jobA}/executions/${ids[2]}/stop`, { token: await token([ALIAS2], "user") });
  });

  it("GET /jobs/{alias}/executions pages the account's executions, newest first", async () => {
    const all = await api("GET", `/jobs/${ALIAS2}/executions`, { token: t2 });
    expect(all.status, all.text).toBe(200);
    expect(all.json).toMatchObject({ totalSize: 5, page: 0, size: 100 });
    expect(all.json.results.map((e: { execution_id: string }) => e.execution_id)).toEqual([...ids].reverse());
    const p1 = await api("GET", `/jobs/${ALIAS2}/executions?page=1&size=2`, { token: t2 });
    expect(p1.json).toMatchObject({ totalSize: 5, page: 1, size: 2 });
    expect(p1.json.results.map((e: { execution_id: string }) => e.execution_id)).toEqual([ids[2], ids[1]]);
    const past = await api("GET", `/jobs/${ALIAS2}/executions?page=9&size=2`, { token: t2 });
    expect(past.json).toMatchObject({ totalSize: 5, page: 9, size: 2, results: [] });
  });

  it("?status= filters", async () => {
    const pending = await api("GET", `/jobs/${ALIAS2}/executions?status=PENDING`, { token: t2 });
    expect(pending.json.totalSize).toBe(3);
    expect(pending.json.results.every((e: { status: string }) => e.status === "PENDING")).toBe(true);
    const killed = await api("GET", `/jobs/${ALIAS2}/executions?status=KILLED`, { token: t2 });
    expect(killed.json.results.map((e: { execution_id: string }) => e.execution_id)).toEqual([ids[0]]);
    const none = await api("GET", `/jobs/${ALIAS2}/executions?status=RUNNING`, { token: t2 });
    expect(none.json).toMatchObject({ totalSize: 0, results: [] });
  });

  it("GET /jobs/{alias}/{jobId}/executions is one job's", async () => {
    const a = await api("GET", `/jobs/${ALIAS2}/${jobA}/executions`, { token: t2 });
    expect(a.json.results.map((e: { execution_id: string }) => e.execution_id)).toEqual([ids[4], ids[2], ids[0]]);
    const aStopped = await api("GET", `/jobs/${ALIAS2}/${jobA}/executions?status=STOPPED`, { token: t2 });
    expect(aStopped.json.results.map((e: { execution_id: string }) => e.execution_id)).toEqual([ids[2]]);
    const b = await api("GET", `/jobs/${ALIAS2}/${jobB}/executions?size=1`, { token: t2 });
    expect(b.json).toMatchObject({ totalSize: 2, size: 1 });
    expect(b.json.results[0].execution_id).toBe(ids[3]);
  });
});

describe("a run seen through the API", () => {
  let id: string;
  beforeAll(async () => {
    id = await executionIn(ALIAS, jobId, "RUNNING");
    await stub(id).uploadEvents(AGENT, {
      ...(await ref(id)),
      events: [
        { seq: 1, timestamp: 1, event_type: "playbook_on_start", stdout: "" },
        { seq: 2, timestamp: 2, event_type: "playbook_on_task_start", play: "site", task: "ping", stdout: "\nTASK [ping] ***\n" },
        { seq: 3, timestamp: 3, event_type: "runner_on_ok", play: "site", task: "ping", host: "web1", stdout: "ok: [web1]\n", data: { ping: "pong" } },
      ],
    });
    await report(id, { status: "SUCCESS", hostStats: { web1: { ok: 1, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 } } });
  });

  it("events in sequence order, paged by after/page/size", async () => {
    const r = await api("GET", `${base()}/executions/${id}/events`, { token: t });
    expect(r.status, r.text).toBe(200);
    expect(r.json.totalSize).toBe(8);
    expect(r.json.results.map((e: { sequence: number }) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.json.results.map((e: { event_type: string }) => e.event_type)).toEqual([
      "execution_status",
      "execution_waiting",
      "execution_status",
      "execution_status",
      "playbook_on_start",
      "playbook_on_task_start",
      "runner_on_ok",
      "execution_status",
    ]);
    const ok = r.json.results[6];
    expect(ok).toEqual({
      id: `${id}:7`,
      sequence: 7,
      timestamp: 3,
      event_type: "runner_on_ok",
      job_id: jobId,
      execution_id: id,
      account_alias: ALIAS,
      host: "web1",
      task: "ping",
      play: "site",
      message: "ok: [web1]\n",
      data: { ping: "pong" },
      notifications: [],
    });
    const after = await api("GET", `${base()}/executions/${id}/events?after=3&size=2&page=1`, { token: t });
    expect(after.json).toMatchObject({ totalSize: 5, page: 1, size: 2 });
    expect(after.json.results.map((e: { sequence: number }) => e.sequence)).toEqual([6, 7]);
  });

  it("the status service answers the same events", async () => {
    const one = await api("GET", `/status/${ALIAS}/job/${jobId}/execution/${id}`, { token: t });
    const direct = await api("GET", `${base()}/executions/${id}/events`, { token: t });
    expect(one.status).toBe(200);
    expect(one.json).toEqual(direct.json);
  });

  it("the plain-text log is every event's text plus a line per status change", async () => {
    const r = await SELF.fetch(`http://runner.test${base()}/executions/${id}/log`, { headers: { authorization: `Bearer ${t}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/plain");
    const text = await r.text();
    expect(text).toBe(
      "[runner] execution PENDING\n[runner] execution PENDING: no agent registered for the shared pool\n[runner] execution INITIALIZING\n[runner] execution RUNNING\n\nTASK [ping] ***\nok: [web1]\n[runner] execution SUCCESS\n",
    );
  });
});

describe("the status service for a whole job", () => {
  it("pages across the job's executions, oldest first, each in sequence order", async () => {
    const alias = "statusjob";
    const job = await newJob(alias);
    const first = await executionIn(alias, job, "RUNNING"); // live: its count is asked of the object
    const second = await executionIn(alias, job, "KILLED"); // ended: its count comes from the index
    const v = await token([alias], "viewer");
    const all = await api("GET", `/status/${alias}/job/${job}`, { token: v });
    expect(all.status, all.text).toBe(200);
    expect(all.json.totalSize).toBe(7); // each: PENDING, why it waited, then 2 more (RUNNING's) or 1 (KILLED)
    expect(all.json.results.map((e: { execution_id: string; sequence: number }) => [e.execution_id, e.sequence])).toEqual([
      [first, 1],
      [first, 2],
      [first, 3],
      [first, 4],
      [second, 1],
      [second, 2],
      [second, 3],
    ]);
    const page = await api("GET", `/status/${alias}/job/${job}?page=2&size=2`, { token: v });
    expect(page.json.results.map((e: { execution_id: string; sequence: number }) => [e.execution_id, e.sequence])).toEqual([
      [second, 1],
      [second, 2],
    ]);
  });
});

type Sse = { id?: string; event?: string; data: string };

/** An SSE reader: `until(pred)` reads messages until one satisfies `pred` (or the deadline passes). */
function sseReader(res: Response) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  const msgs: Sse[] = [];
  let closed = false;
  const parse = () => {
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith(":")) continue;
      const msg: Sse = { data: "" };
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) data.push(line.slice(6));
        else if (line.startsWith("id: ")) msg.id = line.slice(4);
        else if (line.startsWith("event: ")) msg.event = line.slice(7);
      }
      msg.data = data.join("\n");
      msgs.push(msg);
    }
  };
  return {
    msgs,
    async until(pred: (m: Sse) => boolean, deadlineMs = 3_000): Promise<boolean> {
      const until = Date.now() + deadlineMs;
      let seen = msgs.length;
      if (msgs.some(pred)) return true;
      while (!closed && Date.now() < until) {
        const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), until - Date.now()));
        const next = await Promise.race([reader.read(), timeout]);
        if (next === "timeout") break;
        if (next.done) closed = true;
        else buf += decoder.decode(next.value, { stream: true });
        parse();
        if (msgs.slice(seen).some(pred)) return true;
        seen = msgs.length;
      }
      return false;
    },
    close: () => reader.cancel(),
  };
}

async function readSse(res: Response, deadlineMs = 10_000): Promise<Sse[]> {
  const r = sseReader(res);
  await r.until((m) => m.event === "end", deadlineMs);
  await r.close();
  return r.msgs;
}

describe("log follow (Server-Sent Events)", () => {
  it("streams live output and ends with the execution", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    const res = await SELF.fetch(`http://runner.test${base()}/executions/${id}/log?follow=true`, {
      headers: { authorization: `Bearer ${t}`, accept: "text/event-stream" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const sse = sseReader(res);
    expect(await sse.until((m) => m.data.includes("[runner] execution RUNNING"))).toBe(true);
    await sleep(50); // the follower is waiting on the object by now
    await stub(id).uploadEvents(AGENT, {
      ...(await ref(id)),
      events: [{ seq: 1, timestamp: 1, event_type: "runner_on_ok", host: "web1", stdout: "ok: [web1]\n" }],
    });
    // Delivered live (well before the follower's 15 s wait would run out), before the execution ends.
    expect(await sse.until((m) => m.data.includes("ok: [web1]"))).toBe(true);
    await report(id, { status: "FAILURE", reason: "playbook_failed" });
    expect(await sse.until((m) => m.event === "end", 10_000)).toBe(true);
    await sse.close();
    const msgs = sse.msgs;
    const end = msgs.at(-1)!;
    expect(end).toMatchObject({ event: "end", data: "FAILURE" });
    const text = msgs
      .filter((m) => !m.event)
      .map((m) => m.data)
      .join("");
    expect(text).toContain("[runner] execution RUNNING\n");
    expect(text).toContain("ok: [web1]\n");
    expect(text.endsWith("[runner] execution FAILURE (playbook_failed)\n")).toBe(true);
    // ids are the last sequence in each message, increasing
    const seqs = msgs.filter((m) => !m.event).map((m) => Number(m.id));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(Number(end.id)).toBe(6);
  });

  it("resumes after Last-Event-ID, and ends at once for an ended execution", async () => {
    const id = await executionIn(ALIAS, jobId, "KILLED"); // events: PENDING (1), why it waited (2), KILLED (3)
    const res = await SELF.fetch(`http://runner.test${base()}/executions/${id}/log?follow=true`, {
      headers: { authorization: `Bearer ${t}`, accept: "text/event-stream", "last-event-id": "2" },
    });
    const msgs = await readSse(res, 5_000);
    expect(msgs).toEqual([
      { id: "3", data: "[runner] execution KILLED (killed)\n" },
      { id: "3", event: "end", data: "KILLED" },
    ]);
  });
});

describe("log follow (plain text, for terminals)", () => {
  it("answers the plain log live to a client that does not ask for text/event-stream (curl -N), until the execution ends", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    const res = await SELF.fetch(`http://runner.test${base()}/executions/${id}/log?follow=true`, { headers: { authorization: `Bearer ${t}`, accept: "*/*" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let done = false;
    const until = async (pred: () => boolean, deadlineMs = 3_000) => {
      const end = Date.now() + deadlineMs;
      while (!pred() && !done && Date.now() < end) {
        const next = await Promise.race([reader.read(), sleep(end - Date.now()).then(() => "timeout" as const)]);
        if (next === "timeout") break;
        if (next.done) done = true;
        else text += decoder.decode(next.value, { stream: true });
      }
      return pred();
    };
    expect(await until(() => text.includes("[runner] execution RUNNING\n"))).toBe(true);
    await sleep(50);
    await stub(id).uploadEvents(AGENT, {
      ...(await ref(id)),
      events: [{ seq: 1, timestamp: 1, event_type: "runner_on_ok", host: "web1", stdout: "ok: [web1]\n" }],
    });
    // Delivered live, before the execution ends, as bare text (no SSE framing).
    expect(await until(() => text.includes("ok: [web1]\n"))).toBe(true);
    expect(done).toBe(false);
    await report(id, { status: "SUCCESS" });
    await until(() => done, 10_000);
    expect(done).toBe(true);
    expect(text).not.toMatch(/^(data|id|event):/m);
    expect(text.endsWith("[runner] execution SUCCESS\n")).toBe(true);
  });
});

describe("restart routing", () => {
  it("routes afresh: an account that has its own agents now gets the rerun on its own queue", async () => {
    const alias = "reroute";
    const job = await newJob(alias);
    const id = await executionIn(alias, job, "FAILURE");
    expect((await dispatcherStub(env, dispatcherKey(alias, null)).snapshot()).queued.map((q) => q.executionId)).not.toContain(id);
    await newAgent(alias); // a default-location agent of the account
    const r = await api("POST", `/jobs/${alias}/${job}/executions/${id}/restart`, { token: await token([alias], "user") });
    expect(r.status, r.text).toBe(200);
    expect((await dispatcherStub(env, dispatcherKey(alias, null)).snapshot()).queued.map((q) => q.executionId)).toContain(id);
  });
});
