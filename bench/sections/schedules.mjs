import { sleep } from "../../test/e2e/stack.ts";
import { A, TWO_TASKS, b64, call, createJob, median, record, stack } from "../lib/common.mjs";

/**
 * The cron tick's cost: 10 due schedules among 10 held, then among 10,010 held (10,000 not due).
 * Each round creates 10 date schedules a moment ahead, waits for them, and times `/__scheduled`
 * (which answers once the tick has fired them), then kills their executions (still PENDING: the
 * agent is stopped meanwhile, as the runs would load the machine) and deletes them. That the due
 * query reads only due rows is asserted in test/worker/schedules-cron.test.ts (D1's rows_read).
 */
export async function schedules() {
  await stack.stopAgent();
  const sa = await call("POST", `/serviceAccounts/${A}`, {
    alias: "bench-cron",
    username: `bench-cron-${Date.now()}`,
    password: "a long passphrase",
    role: "user",
  });
  if (sa.status !== 200) throw new Error(`service account: ${sa.status} ${sa.text}`);
  const dueJob = await createJob({ playbook: b64(TWO_TASKS) });
  const tick = async () => {
    const t = performance.now();
    const r = await fetch(`${stack.url}/__scheduled?cron=*+*+*+*+*`);
    await r.arrayBuffer();
    return performance.now() - t;
  };
  const rounds = async (label) => {
    const walls = [],
      empty = [];
    for (let i = 0; i < 7; i++) {
      empty.push(await tick()); // nothing due: the cost of looking
      const at = new Date(Date.now() + 1500).toISOString();
      const made = await Promise.all(
        Array.from({ length: 10 }, () =>
          call("POST", `/jobs/${A}/${dueJob}/schedules`, {
            description: "due",
            serviceAccountAlias: "bench-cron",
            trigger: { type: "date", expression: at },
          }),
        ),
      );
      if (made.some((r) => r.status !== 200)) throw new Error(`schedule: ${made.find((r) => r.status !== 200).text}`);
      await sleep(Math.max(0, Date.parse(at) - Date.now()) + 100);
      walls.push(await tick());
      for (const s of made) {
        const got = await call("GET", s.json.links.self);
        if (!got.json.lastExecutionId) throw new Error(`not fired: ${got.text}`);
        // Ended at once (PENDING), so the tick's lease sweep has nothing of ours to look at.
        await call("POST", `/jobs/${A}/${dueJob}/executions/${got.json.lastExecutionId}/kill`, {});
        await call("DELETE", s.json.links.self);
      }
    }
    record(
      "schedules",
      `tick, 10 due of ${label}: wall p50`,
      median(walls),
      "ms",
      `min ${Math.min(...walls).toFixed(1)}, max ${Math.max(...walls).toFixed(1)}; includes starting the 10 executions`,
    );
    record("schedules", `tick, 0 due of ${label}: wall p50`, median(empty), "ms", `min ${Math.min(...empty).toFixed(1)}, max ${Math.max(...empty).toFixed(1)}`);
    return { p50: median(walls), min: Math.min(...walls) };
  };
  const small = await rounds("10 held");
  // 10,000 more, not due (yearly), over 100 jobs (at most 100 schedules a job).
  const t0 = performance.now();
  const jobs = [];
  for (let j = 0; j < 100; j++) jobs.push(await createJob({ playbook: b64(TWO_TASKS) }));
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < 10_000) {
        const n = next++;
        const r = await call("POST", `/jobs/${A}/${jobs[n % 100]}/schedules`, {
          description: "held",
          serviceAccountAlias: "bench-cron",
          trigger: { type: "cron", expression: "0 0 1 1 *" },
        });
        if (r.status !== 200) throw new Error(`seed: ${r.status} ${r.text}`);
      }
    }),
  );
  record("schedules", "seed 10,000 schedules over the API", (performance.now() - t0) / 1000, "s");
  const big = await rounds("10,010 held");
  record(
    "schedules",
    "tick 10 of 10,010 / tick 10 of 10",
    big.p50 / small.p50,
    "x",
    `target ≈ 1 (the due index); of the minimums: ${(big.min / small.min).toFixed(2)}`,
  );
  stack.startAgent();
}
