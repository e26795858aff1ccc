import { join } from "node:path";
import { isTerminal } from "../../test/e2e/stack.ts";
import { A, TWO_TASKS, b64, bareFanout, call, createJob, record, stack, token } from "../lib/common.mjs";

/** 100 executions started at once over 4 agents: time until all are terminal, none lost, none twice. */
export async function fanout() {
  const jobId = await createJob({ playbook: b64(TWO_TASKS) });
  // Four agents in all: the stack's own plus three more, each running up to 4 at once.
  const extra = [];
  for (let i = 0; i < 3; i++) {
    const cfg = join(stack.dir, `fan-${i}.json`);
    await stack.registerAgent(cfg, `fan-${i}`);
    extra.push(stack.startAgent(cfg));
  }
  try {
    const t0 = performance.now();
    const ids = await Promise.all(Array.from({ length: 100 }, async () => (await call("POST", `/jobs/${A}/${jobId}/start`, {})).json.execution_id));
    const final = await Promise.all(ids.map((id) => stack.waitFor(A, jobId, id, token, isTerminal, 600_000)));
    const secs = (performance.now() - t0) / 1000;
    const ok = final.filter((e) => e.status === "SUCCESS").length;
    const twice = final.filter((e) => e.timers.length !== 1 || (e.attempt ?? 1) !== 1).length;
    const agents = new Set(final.map((e) => e.agent_id)).size;
    record("fanout", "100 executions over 4 agents: all terminal", secs, "s", `${ok} SUCCESS, ${100 - ok} other, ${twice} run twice, ${agents} agents used`);
    // The machine's floor: the same 100 runs bare, as many at once as the account's limit lets Runner run (10).
    const floor = await bareFanout(100, 10);
    record("fanout", "100 bare ansible-playbook runs, 10 at once (the floor)", floor, "s");
    record("fanout", "Runner / floor", secs / floor, "x", "target ≤ 1.15");
  } finally {
    await Promise.all(extra.map((c) => stack.stopAgent(c)));
  }
}
