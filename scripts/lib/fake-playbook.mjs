// The event stream of a typical job, as runner-agent uploads it (agent/src/ansible-output.ts):
// one play over `hosts` hosts with `tasks` tasks, each task a task_start, a runner_on_start and a
// runner_on_ok per host, then playbook_on_stats. Shared by the load model
// (test/worker/load-model.test.ts) and the simulator (scripts/simulate.mjs), so both count the
// same job. Uploads are grouped the way the agent's 250 ms uploader sees them when each task takes
// a moment: the start and the play, then one batch per task, then the stats.

/**
 * @param {{ hosts?: number, tasks?: number, now?: number }} [opts]
 * @returns {{ seq: number, timestamp: number, event_type: string, play: string | null, task: string | null, host: string | null, stdout: string, data: Record<string, unknown> }[][]}
 */
export function fakePlaybookBatches(opts = {}) {
  const hosts = Array.from({ length: opts.hosts ?? 1 }, (_, i) => `web${i + 1}`);
  const tasks = opts.tasks ?? 5;
  let seq = 0;
  let t = opts.now ?? Date.now();
  const ev = (event_type, play, task, host, stdout, data = {}) => ({ seq: ++seq, timestamp: t++, event_type, play, task, host, stdout, data });
  const play = "deploy";
  const batches = [[ev("playbook_on_start", null, null, null, ""), ev("playbook_on_play_start", play, null, null, `\nPLAY [${play}] ${"*".repeat(60)}\n`)]];
  for (let k = 1; k <= tasks; k++) {
    const task = `step ${k}`;
    const batch = [ev("playbook_on_task_start", play, task, null, `\nTASK [${task}] ${"*".repeat(60)}\n`)];
    for (const h of hosts) batch.push(ev("runner_on_start", play, task, h, ""));
    for (const h of hosts) batch.push(ev("runner_on_ok", play, task, h, `ok: [${h}]\n`, { changed: k % 2 === 0, res: { msg: "done" } }));
    batches.push(batch);
  }
  const stats = Object.fromEntries(
    hosts.map((h) => [h, { ok: tasks, changed: Math.floor(tasks / 2), failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 }]),
  );
  const recap = hosts.map((h) => `${h} : ok=${tasks} changed=${Math.floor(tasks / 2)} unreachable=0 failed=0\n`).join("");
  batches.push([ev("playbook_on_stats", null, null, null, `\nPLAY RECAP ${"*".repeat(60)}\n${recap}`, { ...stats })]);
  return batches;
}
