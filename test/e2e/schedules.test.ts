// End-to-end: schedules created over HTTP fire through the cron path `npm start` uses
// (`/__scheduled`, as wrangler dev runs Cron Triggers only when asked), and a real agent runs them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64, isTerminal, sleep, Stack } from "./stack";

const A = "e2e-sched";
let stack: Stack;
let admin: string;

const LOCAL = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
const PLAYBOOK = b64(
  "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: scheduled hello\n      ansible.builtin.debug:\n        msg: hello from a schedule\n",
);

beforeAll(async () => {
  stack = await new Stack().start();
  admin = await stack.token([A], "admin");
});
afterAll(async () => {
  await stack?.stop();
});

const tick = async () => {
  const r = await fetch(`${stack.url}/__scheduled?cron=*+*+*+*+*`);
  expect(r.status).toBe(200);
  await r.arrayBuffer();
};

describe("schedules on the real stack (e2e)", () => {
  it("a cron and a date schedule fire on the tick after their slot; their executions reach SUCCESS, once each", async () => {
    const sa = await stack.call("POST", `/serviceAccounts/${A}`, admin, {
      alias: "cron",
      username: "e2e-sched-cron",
      password: "a long passphrase",
      role: "user",
    });
    expect(sa.status, sa.text).toBe(200);
    const job = await stack.call("POST", `/jobs/${A}`, admin, { name: "scheduled", playbook: PLAYBOOK, hosts: LOCAL });
    expect(job.status, job.text).toBe(200);
    const jobId = job.json.id as string;

    const user = await stack.token([A], "user");
    const cron = await stack.call("POST", `/jobs/${A}/${jobId}/schedules`, user, {
      description: "every minute",
      serviceAccountAlias: "cron",
      trigger: { type: "cron", expression: "* * * * *" },
    });
    expect(cron.status, cron.text).toBe(200);
    // The original's body form, for a date a few seconds ahead.
    const at = new Date(Date.now() + 5_000).toISOString();
    const date = await stack.call("POST", `/jobs/${A}/${jobId}/schedules`, user, {
      description: "once",
      serviceAccountAlias: "cron",
      type: { type: "date", expression: at },
    });
    expect(date.status, date.text).toBe(200);

    // Nothing is due yet: a tick now starts nothing (unless the minute is about to turn).
    if (Math.min(cron.json.nextRunTime, date.json.nextRunTime) - Date.now() > 2_000) {
      await tick();
      expect((await stack.call("GET", `/jobs/${A}/${jobId}/executions`, user)).json.totalSize).toBe(0);
    }

    const due = Math.max(cron.json.nextRunTime, date.json.nextRunTime);
    await sleep(Math.max(0, due - Date.now()) + 500);
    await tick();
    await tick(); // a repeated tick adds nothing

    const list = await stack.call("GET", `/jobs/${A}/${jobId}/executions`, user);
    expect(list.json.totalSize, list.text).toBe(2);
    const bySchedule = new Map(list.json.results.map((e: { schedule_id: string }) => [e.schedule_id, e]));
    for (const s of [cron.json, date.json]) {
      const e = bySchedule.get(s.id) as { execution_id: string; trigger: string };
      expect(e, `an execution of schedule ${s.id}`).toBeDefined();
      expect(e.trigger).toBe("schedule");
      const done = await stack.waitFor(A, jobId, e.execution_id, user, isTerminal);
      expect(done.status, JSON.stringify(done)).toBe("SUCCESS");
      const after = await stack.call("GET", `/jobs/${A}/${jobId}/schedules/${s.id}`, user);
      expect(after.json).toMatchObject({ lastExecutionId: e.execution_id, lastRunTime: s.nextRunTime, lastError: null });
      const log = await stack.call("GET", `/jobs/${A}/${jobId}/executions/${e.execution_id}/log`, user);
      expect(log.text).toContain("hello from a schedule");
    }
    const dateAfter = await stack.call("GET", `/jobs/${A}/${jobId}/schedules/${date.json.id}`, user);
    expect(dateAfter.json).toMatchObject({ enabled: false, nextRunTime: null });
    const cronAfter = await stack.call("GET", `/jobs/${A}/${jobId}/schedules/${cron.json.id}`, user);
    expect(cronAfter.json.nextRunTime).toBe(cron.json.nextRunTime + 60_000);
  });
});
