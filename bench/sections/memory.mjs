import { readFileSync } from "node:fs";
import { sleep } from "../../test/e2e/stack.ts";
import { A, b64, call, countLogLines, createJob, followToEnd, record, stack } from "../lib/common.mjs";

/** The agent's peak RSS idle and while streaming a playbook printing 100,000 lines. */
export async function memory() {
  const pid = stack.agentPid();
  const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
  await sleep(2000);
  record("memory", "agent RSS idle", rss(), "MiB");
  const jobId = await createJob({
    // The default callback prints a list one element per line: 100 items × 1,000 lines each.
    playbook: b64(
      '- hosts: all\n  gather_facts: false\n  tasks:\n    - name: print 100000 lines\n      ansible.builtin.debug:\n        msg: "{{ range(0, 1000) | list }}"\n      loop: "{{ range(0, 100) | list }}"\n',
    ),
  });
  const cpuMs = () => {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, USER_HZ 100
  };
  const cpu0 = cpuMs();
  const r = await call("POST", `/jobs/${A}/${jobId}/start`, {});
  let peak = 0;
  const poll = setInterval(() => (peak = Math.max(peak, rss())), 100);
  const followStart = performance.now();
  const { bytes } = await followToEnd(jobId, r.json.execution_id);
  clearInterval(poll);
  const agentCpu = cpuMs() - cpu0;
  record("memory", "agent peak RSS streaming 100k lines", Math.max(peak, 0), "MiB", `VmHWM ${hwm().toFixed(0)} MiB; target < 150`);
  record("memory", "agent CPU for that run", agentCpu, "ms", "the agent process alone (not ansible), from /proc");
  record("memory", "log follow (SSE) of that run", performance.now() - followStart, "ms", `${(bytes / 2 ** 20).toFixed(1)} MiB streamed live`);
  const lines = await countLogLines(jobId, r.json.execution_id);
  record("memory", "lines in that log (GET …/log, streamed)", lines, "lines");
  // What the run leaves behind: idle again, polling for the next lease.
  await sleep(5000);
  record("memory", "agent RSS idle after that run", rss(), "MiB", "5 s after the run; target ≤ 60");
  await sleep(25_000);
  record("memory", "agent RSS idle 30 s after that run", rss(), "MiB", "target ≤ 60");
}
