import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isTerminal, sleep } from "../../test/e2e/stack.ts";
import { A, TWO_TASKS, b64, bareFanout, call, createJob, record, stack, warm } from "../lib/common.mjs";

const N = 100;
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];

/** 100 executions started at once over 4 agents: time until all are terminal, none lost, none twice; then the machine's floor. */
export async function fanout() {
  await warm();
  const jobId = await createJob({ playbook: b64(TWO_TASKS) });
  // Four agents in all: the stack's own plus three more, each running up to 4 at once.
  const extra = [];
  for (let i = 0; i < 3; i++) {
    const cfg = join(stack.dir, `fan-${i}.json`);
    await stack.registerAgent(cfg, `fan-${i}`);
    extra.push(stack.startAgent(cfg));
  }
  try {
    // The machine's floor: the same runs bare, as many at once as the account's limit lets Runner
    // run (10); once before and once after Runner's, their mean the floor (the load drifts).
    const floorBefore = load();
    const floor1 = await bareFanout(N, 10);
    const floorNote1 = `${floor1.toFixed(1)} s (load ${floorBefore} → ${load()})`;
    await sleep(3000); // the three new agents' first polls are open
    await warm();
    const before = load();
    const t0 = performance.now();
    const starts = await Promise.all(Array.from({ length: N }, () => call("POST", `/jobs/${A}/${jobId}/start`, {})));
    const refused = starts.filter((r) => r.status !== 200);
    if (refused.length) throw new Error(`${refused.length} starts refused: ${refused[0].status} ${refused[0].text.slice(0, 200)}`);
    const ids = new Set(starts.map((r) => r.json.execution_id));
    // One list request a second: a poller per execution (100 × 4/s) would load the API the runs share.
    const until = Date.now() + 900_000;
    let done = 0;
    while (Date.now() < until) {
      const page = await call("GET", `/jobs/${A}/${jobId}/executions?size=100`);
      done = page.json.results.filter((e) => ids.has(e.execution_id) && isTerminal(e)).length;
      if (done === N) break;
      await sleep(1000);
    }
    const secs = (performance.now() - t0) / 1000;
    const during = `load ${before} → ${load()}`;
    if (done !== N) throw new Error(`only ${done} of ${N} terminal after 15 min`);
    // Each execution as its object answers it: its status, how often it ran, on which agent.
    const final = [];
    for (const id of ids) final.push((await call("GET", `/jobs/${A}/${jobId}/executions/${id}`)).json);
    const ok = final.filter((e) => e.status === "SUCCESS").length;
    const twice = final.filter((e) => e.timers.length !== 1 || (e.attempt ?? 1) !== 1).length;
    const agents = new Set(final.map((e) => e.agent_id)).size;
    record(
      "fanout",
      `${N} executions over 4 agents: all terminal`,
      secs,
      "s",
      `${ok} SUCCESS, ${N - ok} other, ${twice} run twice, ${agents} agents used; ${during}`,
    );
    const floorAfter = load();
    const floor2 = await bareFanout(N, 10);
    const floor = (floor1 + floor2) / 2;
    record(
      "fanout",
      `${N} bare ansible-playbook runs, 10 at once (the floor, mean of before and after)`,
      floor,
      "s",
      `before ${floorNote1}; after ${floor2.toFixed(1)} s (load ${floorAfter} → ${load()})`,
    );
    record("fanout", "Runner / floor", secs / floor, "x", "target ≤ 1.15");
  } finally {
    await Promise.all(extra.map((c) => stack.stopAgent(c)));
  }
}
