// End to end: the network between the agent and the API cut under a running execution (a TCP
// proxy between them, test/fixtures/proxy.ts), on the real stack. The lost-agent window is
// shortened to 60 s for this stack; the cut shorter than it still outlasts the 30 s lease the
// API used to hold, which ended such an execution agent_lost and threw its events away.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntilGone } from "../fixtures/processes";
import { startProxy, type Proxy } from "../fixtures/proxy";
import { b64, isTerminal, sleep, Stack } from "./stack";

const A = "e2e-cut";
const WINDOW_S = 60;
let stack: Stack;
let proxy: Proxy;
let token: string;
const LOCAL = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];

async function startJob(playbook: string) {
  const r = await stack.call("POST", `/jobs/${A}?immediate=true`, token, { name: "cut", playbook: b64(playbook), hosts: LOCAL });
  expect(r.status, r.text).toBe(200);
  return { jobId: r.json.id as string, executionId: r.json.execution.execution_id as string };
}

beforeAll(async () => {
  stack = await new Stack().start({ agent: false, vars: { LOST_AGENT_WINDOW_SECONDS: String(WINDOW_S) } });
  proxy = await startProxy(Number(new URL(stack.url).port));
  await stack.registerAgent(stack.agentConfig, "e2e-cut-agent");
  // The agent reaches the API only through the proxy; the test talks to the API directly.
  stack.startAgent(stack.agentConfig, ["--url", proxy.url]);
  token = await stack.token([A]);
}, 240_000);

afterAll(async () => {
  proxy?.restore();
  const pid = stack?.agentPid();
  await stack?.stop();
  await proxy?.stop();
  if (pid) {
    for (const p of stack.trackedProcesses(pid)) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        /* gone meanwhile */
      }
    }
  }
});

describe("the API unreachable from the agent", () => {
  it("for 40 s mid-run (under the window): the execution stays RUNNING, says since when its agent is unreachable, and ends SUCCESS with every event, in sequence", async () => {
    const steps = [1, 2, 3, 4, 5, 6, 7, 8];
    const tasks = steps.map((i) => `    - name: step ${i}\n      ansible.builtin.shell: sleep 3; echo step-${i}-done\n`).join("");
    const { jobId, executionId } = await startJob(`- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}`);
    await stack.waitFor(A, jobId, executionId, token, (e) => e.status === "RUNNING");
    await sleep(2_000);
    const cutAt = Date.now();
    proxy.cut();
    let during: any;
    try {
      // The playbook (about 25 s) ends while the agent cannot report it.
      during = await stack.waitFor(A, jobId, executionId, token, (e) => e.agent_unreachable_since !== null, 30_000);
      expect(during.status).toBe("RUNNING");
      expect(during.agent_unreachable_since).toBeLessThanOrEqual(cutAt + 1_000);
      while (Date.now() - cutAt < 40_000) {
        await sleep(2_000);
        const v = await stack.call("GET", `/jobs/${A}/${jobId}/executions/${executionId}`, token);
        expect(v.json.status).toBe("RUNNING"); // past the old 30 s lease, still in the window
      }
    } finally {
      proxy.restore();
    }
    const done = await stack.waitFor(A, jobId, executionId, token, isTerminal, 90_000);
    expect(done).toMatchObject({ status: "SUCCESS", reason: null, agent_unreachable_since: null });
    expect(done.host_stats.localhost).toMatchObject({ ok: 8, changed: 8, failed: 0 });
    const events = await stack.call("GET", `/jobs/${A}/${jobId}/executions/${executionId}/events?size=100`, token);
    expect(events.status, events.text).toBe(200);
    const results = events.json.results as any[];
    expect(results.length).toBe(events.json.totalSize);
    const seqs = results.map((e) => e.sequence);
    expect(seqs).toEqual(seqs.map((_: number, i: number) => i + 1)); // no gap, no duplicate
    const oks = results.filter((e) => e.event_type === "runner_on_ok").map((e) => e.task);
    expect(oks).toEqual(steps.map((i) => `step ${i}`)); // each once, in order
    expect(results.filter((e) => e.event_type === "playbook_on_stats")).toHaveLength(1);
    const statuses = results.filter((e) => e.event_type === "execution_status").map((e) => e.data.status);
    expect(statuses).toEqual(["PENDING", "INITIALIZING", "RUNNING", "SUCCESS"]);
    expect(stack.trackedProcesses()).toEqual([]);
  }, 240_000);

  it("for longer than the window: the API ends it FAILURE agent_lost, the agent has killed its run itself, and takes new work when the link is back", async () => {
    const { jobId, executionId } = await startJob(
      "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: long\n      ansible.builtin.command: sleep 600\n",
    );
    await stack.waitFor(A, jobId, executionId, token, (e) => e.status === "RUNNING");
    const agentPid = stack.agentPid();
    expect(stack.trackedProcesses(agentPid).length).toBeGreaterThan(0);
    proxy.cut();
    let done: any;
    try {
      done = await stack.waitFor(A, jobId, executionId, token, isTerminal, (WINDOW_S + 60) * 1000);
      expect(done).toMatchObject({ status: "FAILURE", reason: "agent_lost" });
      // Both sides count down the same lease: the run is gone too, nobody having reached the agent.
      expect(await waitUntilGone(() => stack.trackedProcesses(agentPid), 10_000)).toEqual([]);
    } finally {
      proxy.restore();
    }
    // The agent reports nothing more for that lease, and goes on working.
    const next = await startJob("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: { msg: after }\n");
    const after = await stack.waitFor(A, next.jobId, next.executionId, token, isTerminal, 90_000);
    expect(after.status).toBe("SUCCESS");
    const again = await stack.call("GET", `/jobs/${A}/${jobId}/executions/${executionId}`, token);
    expect(again.json).toMatchObject({ status: "FAILURE", reason: "agent_lost" });
    expect(stack.agentOutput).toContain("the lease has expired");
  }, 300_000);
});
