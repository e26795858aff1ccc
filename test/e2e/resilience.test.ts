// End-to-end resilience: the API restarts under a running execution; the agent dies mid-run.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntilGone } from "../fixtures/processes";
import { b64, isTerminal, Stack } from "./stack";

const A = "e2e-res";
let stack: Stack;
let token: string;
const LOCAL = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];

async function startJob(playbook: string) {
  const r = await stack.call("POST", `/jobs/${A}?immediate=true`, token, { name: "res", playbook: b64(playbook), hosts: LOCAL });
  expect(r.status, r.text).toBe(200);
  return { jobId: r.json.id as string, executionId: r.json.execution.execution_id as string };
}

beforeAll(async () => {
  // A killed agent's execution ends when the lost-agent window does: 30 s here (default 120 s).
  stack = await new Stack().start({ vars: { LOST_AGENT_WINDOW_SECONDS: "30" } });
  token = await stack.token([A]);
}, 240_000);

function killAll(list: { pid: number }[]) {
  for (const p of list) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      /* gone meanwhile */
    }
  }
}

afterAll(async () => {
  const pids = [stack?.agentPid()];
  await stack?.stop();
  for (const pid of pids) if (pid) killAll(stack.trackedProcesses(pid));
});

describe("end-to-end resilience", () => {
  it("finishes an execution with nothing lost when the API restarts while it runs", async () => {
    const tasks = [1, 2, 3, 4, 5].map((i) => `    - name: step ${i}\n      ansible.builtin.shell: sleep 2; echo step-${i}-done\n`).join("");
    const { jobId, executionId } = await startJob(`- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}`);
    await stack.waitFor(A, jobId, executionId, token, (e) => e.status === "RUNNING");
    await stack.restartApi(); // same port, same persisted state
    const done = await stack.waitFor(A, jobId, executionId, token, isTerminal, 120_000);
    expect(done.status).toBe("SUCCESS");
    expect(done.host_stats.localhost).toMatchObject({ ok: 5, changed: 5, failed: 0 });
    const log = await stack.call("GET", `/jobs/${A}/${jobId}/executions/${executionId}/log`, token);
    for (const i of [1, 2, 3, 4, 5]) expect(log.text).toContain(`TASK [step ${i}]`);
    const events = await stack.call("GET", `/jobs/${A}/${jobId}/executions/${executionId}/events?size=100`, token);
    const seqs = events.json.results.map((e: any) => e.sequence);
    expect(seqs).toEqual(seqs.map((_: number, i: number) => i + 1)); // no gap, no duplicate
    const oks = events.json.results.filter((e: any) => e.event_type === "runner_on_ok");
    expect(oks).toHaveLength(5);
  }, 180_000);

  it("ends an execution agent_lost when its agent is killed mid-run", async () => {
    const { jobId, executionId } = await startJob(
      "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: wait\n      ansible.builtin.command: sleep 120\n",
    );
    await stack.waitFor(A, jobId, executionId, token, (e) => e.status === "RUNNING");
    const agentPid = stack.agentPid();
    stack.killAgentHard();
    const done = await stack.waitFor(A, jobId, executionId, token, isTerminal, 120_000);
    expect(done.status).toBe("FAILURE");
    expect(done.reason).toBe("agent_lost");
    // The run does not outlive its agent: the sandbox dies with it (bwrap --die-with-parent, and
    // ansible-playbook's lifeline), with no later agent doing the killing.
    expect(await waitUntilGone(() => stack.trackedProcesses(agentPid), 10_000)).toEqual([]);
  }, 180_000);
});
