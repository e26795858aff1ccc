import { isTerminal, sleep } from "../../test/e2e/stack.ts";
import { A, TWO_TASKS, agentMarks, b64, call, createJob, events, median, record, stack, token } from "../lib/common.mjs";

/**
 * POST start sent → INITIALIZING (the lease handed to a waiting agent) → RUNNING (the agent saw
 * ansible-playbook's playbook_on_start: the process is up and has parsed the playbook).
 * Client and server share this machine's clock.
 */
export async function dispatch() {
  const jobId = await createJob({ playbook: b64(TWO_TASKS) });
  const toInit = [],
    toRun = [],
    answeredIn = [],
    toAgent = [];
  for (let i = 0; i < 10; i++) {
    const sent = Date.now();
    const r = await call("POST", `/jobs/${A}/${jobId}/start`, {});
    const answered = Date.now();
    answeredIn.push(answered - sent);
    const id = r.json.execution_id;
    await stack.waitFor(A, jobId, id, token, isTerminal);
    for (let k = 0; k < 20 && agentMarks(id).received === undefined; k++) await sleep(50);
    const received = agentMarks(id).received;
    if (received !== undefined) toAgent.push(received - answered);
    const ev = await events(jobId, id);
    const at = (s) => ev.find((e) => e.event_type === "execution_status" && JSON.stringify(e.message ?? e.data ?? "").includes(s))?.timestamp;
    if (at("INITIALIZING")) toInit.push(at("INITIALIZING") - sent);
    if (at("RUNNING")) toRun.push(at("RUNNING") - sent);
  }
  record("dispatch", "POST start answered p50", median(answeredIn), "ms");
  record("dispatch", "start → INITIALIZING (leased) p50", median(toInit), "ms", "target < 100 ms");
  record(
    "dispatch",
    "start answered → lease in the agent's hands p50",
    median(toAgent),
    "ms",
    `target ≤ 20 ms; negative: the lease arrived before the start's answer (min ${Math.min(...toAgent).toFixed(1)}, max ${Math.max(...toAgent).toFixed(1)})`,
  );
  record("dispatch", "start → RUNNING (playbook_on_start) p50", median(toRun), "ms", "includes ansible-playbook's own start-up");
}
