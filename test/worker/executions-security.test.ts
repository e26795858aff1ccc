import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { AGENT, executionIn, newJob, ref, report, start, storedState, stub } from "./execution-fixtures";

/** Who may see and act on executions, and where per-execution secrets may (not) go. */
const ALIAS = "sec";
const OTHER = "sec-other";
let jobId: string;
let otherJob: string;
let id: string;
let otherId: string;
beforeAll(async () => {
  jobId = await newJob(ALIAS, { hosts: [{ id: "web1" }, { id: "web2" }] });
  otherJob = await newJob(OTHER);
  id = await executionIn(ALIAS, jobId, "RUNNING");
  otherId = await executionIn(OTHER, otherJob, "RUNNING");
});
const paths = (alias: string, job: string, exec: string) => [
  ["GET", `/jobs/${alias}/executions`],
  ["GET", `/jobs/${alias}/${job}/executions`],
  ["GET", `/jobs/${alias}/${job}/executions/${exec}`],
  ["GET", `/jobs/${alias}/${job}/executions/${exec}/events`],
  ["GET", `/jobs/${alias}/${job}/executions/${exec}/log`],
  ["GET", `/status/${alias}/job/${job}`],
  ["GET", `/status/${alias}/job/${job}/execution/${exec}`],
  ["POST", `/jobs/${alias}/${job}/start`],
  ["POST", `/jobs/${alias}/${job}/executions/${exec}/stop`],
  ["POST", `/jobs/${alias}/${job}/executions/${exec}/kill`],
  ["POST", `/jobs/${alias}/${job}/executions/${exec}/restart`],
];

describe("authentication and authorization", () => {
  it("no token: 401 everywhere", async () => {
    for (const [m, p] of paths(ALIAS, jobId, id)) expect((await api(m!, p!, { token: null })).status, `${m} ${p}`).toBe(401);
  });

  it("a foreign account's executions are 404, and nothing happens to them", async () => {
    const mine = await token([ALIAS], "admin");
    for (const [m, p] of paths(OTHER, otherJob, otherId)) expect((await api(m!, p!, { token: mine })).status, `${m} ${p}`).toBe(404);
    // Its id under my own account and job is not found either.
    for (const suffix of ["", "/events", "/log", "/stop", "/kill"]) {
      const r = await api(suffix && suffix !== "/events" && suffix !== "/log" ? "POST" : "GET", `/jobs/${ALIAS}/${jobId}/executions/${otherId}${suffix}`, {
        token: mine,
      });
      expect(r.status, suffix).toBe(404);
    }
    expect((await stub(otherId).view()).status).toBe("RUNNING");
  });

  it("a viewer reads but cannot start, stop, kill or restart (403)", async () => {
    const viewer = await token([ALIAS], "viewer");
    for (const [m, p] of paths(ALIAS, jobId, id)) {
      const r = await api(m!, p!, { token: viewer });
      expect(r.status, `${m} ${p}`).toBe(m === "GET" ? 200 : 403);
    }
    expect((await stub(id).view()).status).toBe("RUNNING");
    expect((await api("GET", `/jobs/${ALIAS}/${jobId}/executions`, { token: viewer })).json.totalSize).toBe(1);
  });
});

describe("per-execution secrets", () => {
  const KEY = "START-ONLY-KEY-9d8c7b";
  const HOST_KEY = "HOST-ONLY-KEY-1a2b3c";
  const needles = [KEY, HOST_KEY, btoa(KEY), btoa(HOST_KEY)];
  const clean = (text: string, where: string) => {
    for (const n of needles) expect(text.includes(n), `${where} leaks a secret`).toBe(false);
  };

  it("go only into the lease, are encrypted at rest, never answered, and dropped when the execution ends", async () => {
    const t = await token([ALIAS], "user");
    const started = await api("POST", `/jobs/${ALIAS}/${jobId}/start`, {
      token: t,
      body: { sshPrivateKey: btoa(KEY), hosts: [{ id: "web1", sshPrivateKey: btoa(HOST_KEY) }] },
    });
    expect(started.status).toBe(200);
    clean(started.text, "start answer");
    const exec = started.json.execution_id as string;
    const atRest = await storedState(exec);
    clean(atRest, "stored state");
    expect(JSON.parse(atRest).secrets).toMatch(/^v1\./); // the ciphertext format of worker/lib/secrets.ts

    const lease = (await stub(exec).grantLease(AGENT))!;
    expect(lease.job.sshPrivateKey).toBe(btoa(KEY));
    expect(lease.secrets).toEqual(expect.arrayContaining([btoa(KEY), btoa(HOST_KEY)]));
    // The agent redacts before upload; even if a value slipped through, the lease itself is never stored.
    await report(exec, { status: "RUNNING" });
    await stub(exec).uploadEvents(AGENT, {
      ...(await ref(exec)),
      events: [{ seq: 1, timestamp: 1, event_type: "runner_on_ok", host: "web1", stdout: "ok: [web1]\n", data: { key: "********" } }],
    });
    await report(exec, { status: "FAILURE", failedHosts: ["web1"] });
    const base = `/jobs/${ALIAS}/${jobId}/executions/${exec}`;
    for (const p of [
      base,
      `${base}/events`,
      `${base}/log`,
      `/jobs/${ALIAS}/executions`,
      `/jobs/${ALIAS}/${jobId}/executions`,
      `/status/${ALIAS}/job/${jobId}`,
    ]) {
      const r = await api("GET", p, { token: t });
      expect(r.status).toBe(200);
      clean(r.text, p);
    }
    const follow = await SELF.fetch(`http://runner.test${base}/log?follow=true`, { headers: { authorization: `Bearer ${t}` } });
    clean(await follow.text(), "log follow");
    const row = await env.DB.prepare("SELECT * FROM executions WHERE id = ?").bind(exec).first();
    clean(JSON.stringify(row), "index row");
    // Ended: the ciphertext is gone too, so a restart must be given the keys again.
    expect(JSON.parse(await storedState(exec)).secrets).toBeNull();
    const restarted = await api("POST", `${base}/restart`, { token: t, body: { sshPrivateKey: btoa(KEY) } });
    expect(restarted.status).toBe(200);
    clean(restarted.text, "restart answer");
    const again = (await stub(exec).grantLease("agent-2"))!;
    expect(again.job.sshPrivateKey).toBe(btoa(KEY));
    expect(again.job.hosts.find((h) => h.id === "web1")!.sshPrivateKey ?? null).toBeNull(); // not given again: gone
    expect(again.limit).toEqual(["web1"]);
  });

  it("are not echoed by a refused start, restart or stop", async () => {
    const t = await token([ALIAS], "user");
    const failed = await executionIn(ALIAS, jobId, "FAILURE");
    const base = `/jobs/${ALIAS}/${jobId}`;
    const refused: [string, unknown][] = [
      [`${base}/start`, { sshPrivateKey: btoa(KEY), hosts: "web1" }],
      [`${base}/start`, { sshPrivateKey: `${KEY}${"x".repeat(70_000)}` }],
      [`${base}/start`, { hosts: [{ id: "", sshPrivateKey: btoa(HOST_KEY) }], check: "yes" }],
      [`${base}/start`, { sshPrivateKey: [btoa(KEY)] }],
      [`${base}/executions/${failed}/restart`, { sshPrivateKey: 5, hosts: [{ id: 7, sshPrivateKey: btoa(HOST_KEY) }] }],
      [`${base}/executions/${failed}/stop`, { expiryDuration: btoa(KEY) }],
    ];
    for (const [path, body] of refused) {
      const r = await api("POST", path, { token: t, body });
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.status, path).toBeLessThan(500);
      clean(r.text, `refused ${path}`);
    }
  });

  it("a lease without start secrets carries none of them", async () => {
    const exec = await start(ALIAS, jobId);
    const lease = (await stub(exec).grantLease(AGENT))!;
    for (const n of needles) expect(JSON.stringify(lease).includes(n)).toBe(false);
  });
});
