import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isTerminal } from "../../test/e2e/stack.ts";
import { A, TWO_TASKS, b64, call, createJob, followToEnd, hopsOf, median, record, recordHops } from "../lib/common.mjs";

/** Wall time of a two-task local playbook: Runner end to end vs bare ansible-playbook vs ansible-runner. */
export async function e2e() {
  const dir = mkdtempSync(join(tmpdir(), "runner-bench-"));
  writeFileSync(join(dir, "pb.yml"), TWO_TASKS);
  writeFileSync(join(dir, "inv.ini"), "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n");
  const time = (cmd, args, opts) => {
    const t = performance.now();
    const r = spawnSync(cmd, args, { stdio: "ignore", ...opts });
    if (r.status !== 0) throw new Error(`${cmd} failed`);
    return performance.now() - t;
  };
  const bare = [],
    runnerCli = [],
    ours = [],
    hops = [];
  const jobId = await createJob({ playbook: b64(TWO_TASKS) });
  // Interleaved, so that the machine's load moves every column alike; the overhead is also given
  // as the median of each round's own difference (Runner − the bare run just before it).
  const rounds = Number(process.env.BENCH_E2E_ROUNDS ?? 11);
  for (let i = 0; i < rounds; i++) {
    bare.push(time("ansible-playbook", ["-i", join(dir, "inv.ini"), join(dir, "pb.yml")]));
    const pd = join(dir, `ar-${i}`);
    mkdirSync(join(pd, "project"), { recursive: true });
    mkdirSync(join(pd, "inventory"), { recursive: true });
    writeFileSync(join(pd, "project", "pb.yml"), TWO_TASKS);
    writeFileSync(join(pd, "inventory", "hosts"), "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n");
    try {
      runnerCli.push(time("ansible-runner", ["run", pd, "-p", "pb.yml"]));
    } catch {
      /* ansible-runner missing: reported as n/a */
    }
    const t = performance.now();
    const sent = Date.now();
    const r = await call("POST", `/jobs/${A}/${jobId}/start`, {});
    const answered = Date.now();
    const id = r.json.execution_id;
    const f = await followToEnd(jobId, id);
    // As a user sees it: start → the live log ends → the final status read.
    const final = await call("GET", `/jobs/${A}/${jobId}/executions/${id}`);
    ours.push(performance.now() - t);
    if (!isTerminal(final.json)) throw new Error(`not terminal after the log ended: ${final.text}`);
    hops.push(await hopsOf(jobId, id, { sent, answered, firstOutput: f.firstAt, closed: f.closedAt, finalRead: Date.now() }));
  }
  rmSync(dir, { recursive: true, force: true });
  record("e2e", "bare ansible-playbook p50", median(bare), "ms");
  record("e2e", "ansible-runner p50", runnerCli.length ? median(runnerCli) : "n/a", "ms");
  record("e2e", "Runner (start → log ends → final status read) p50", median(ours), "ms");
  record("e2e", "Runner − bare (overhead) p50", median(ours) - median(bare), "ms", "target ≤ 60 ms");
  record("e2e", "Runner / bare", median(ours) / median(bare), "x", "target ≤ 1.05");
  record("e2e", "Runner − bare, paired by round, p50", median(ours.map((o, i) => o - bare[i])), "ms", `${rounds} rounds`);
  record("e2e", "Runner / bare, paired by round, p50", median(ours.map((o, i) => o / bare[i])), "x");
  if (runnerCli.length) record("e2e", "Runner / ansible-runner", median(ours) / median(runnerCli), "x", "target < 1");
  recordHops("e2e", hops);
}
