import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "../../test/e2e/stack.ts";
import { startWranglerDev } from "../../scripts/lib/wrangler-dev.mjs";
import { A, ROOT, TWO_TASKS, b64, call, createJob, record, rssMiB, signBenchToken, stack, workerdGroups } from "../lib/common.mjs";

/**
 * workerd's memory growth over the same 10,000 mixed requests sent to Runner and to a trivial
 * Worker (bench/trivial-worker, `fetch() { return new Response("ok") }`) under its own `wrangler
 * dev` in the same run: what the local runtime grows by on its own, and what Runner adds. A
 * control Worker (bench/control-worker) asks the runtime for what Runner asks per request (a D1
 * read, an object call, a log line) with no logic of its own, so Runner against it is what
 * Runner's code adds. Each request carries a token of its own (10,000 distinct tokens), so a
 * per-token cache would show.
 * RSS is summed over each `wrangler dev`'s workerd processes, from /proc.
 */
export async function workerd() {
  await stack.stopAgent(); // its polls would be requests the trivial Worker does not get
  const jobId = await createJob({ playbook: b64(TWO_TASKS) });
  const started = await call("POST", `/jobs/${A}/${jobId}/start`, {});
  const execId = started.json.execution_id;
  await call("POST", `/jobs/${A}/${jobId}/executions/${execId}/kill`, {});
  process.stderr.write("bench: workerd: starting the trivial Worker\n");
  const trivialState = mkdtempSync(join(tmpdir(), "runner-trivial-"));
  const controlState = mkdtempSync(join(tmpdir(), "runner-control-"));
  let trivial, control;
  try {
    trivial = await startWranglerDev({ cwd: join(ROOT, "bench/trivial-worker"), persistTo: trivialState });
    control = await startWranglerDev({ cwd: join(ROOT, "bench/control-worker"), persistTo: controlState });
    const N = Number(process.env.BENCH_WORKERD_REQUESTS) || 10_000;
    const progress = (m) => process.stderr.write(`bench: workerd: ${m}\n`);
    progress(`signing ${N} tokens`);
    const tokens = await Promise.all(Array.from({ length: N }, (_, i) => signBenchToken(i)));
    const kinds = [
      () => ["GET", "/health"],
      () => ["GET", `/jobs/${A}?size=5`],
      () => ["GET", `/jobs/${A}/${jobId}`],
      () => ["GET", `/jobs/${A}/executions?size=5`],
      () => ["GET", `/jobs/${A}/${jobId}/executions/${execId}`], // the Execution object
      () => ["GET", `/jobs/${A}/${jobId}/executions/${execId}/events?size=10`],
      () => ["GET", `/jobs/${A}/${jobId}/executions/${execId}/log`],
      () => ["GET", `/minions/${A}`],
      () => ["GET", `/inventory/${A}`],
      () => ["GET", `/accounts/${A}/settings`],
      () => ["GET", `/jobs/${A}/${crypto.randomUUID()}`], // 404
      () => ["POST", `/jobs/${A}`, JSON.stringify({ name: 1 })], // 400
      () => ["GET", `/jobs/${A}`, undefined, "Bearer not-a-token"], // 401
    ];
    const requests = Array.from({ length: N }, (_, i) => {
      const [method, path, body, auth] = kinds[i % kinds.length]();
      return { method, path, body, auth: auth ?? `Bearer ${tokens[i]}` };
    });
    const send = async (base, list) => {
      let next = 0,
        bad = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < list.length) {
            const r = list[next++];
            const res = await fetch(base + r.path, {
              method: r.method,
              headers: { authorization: r.auth, ...(r.body ? { "content-type": "application/json" } : {}) },
              body: r.body,
            });
            await res.arrayBuffer();
            if (res.status >= 500) bad++;
          }
        }),
      );
      return bad;
    };
    const groups = workerdGroups({ trivial: trivial.child.pid, control: control.child.pid });
    const measure = async (base, which) => {
      progress(`${which}: warming up`);
      await send(base, requests.slice(0, 500)); // warm: first-use costs are not growth
      await sleep(3000);
      const before = rssMiB(groups()[which]);
      const t0 = performance.now();
      progress(`${which}: ${N} requests (workerd pids ${groups()[which].join(", ")}, ${before.toFixed(0)} MiB)`);
      const bad = await send(base, requests);
      const secs = (performance.now() - t0) / 1000;
      await sleep(5000);
      const after = rssMiB(groups()[which]);
      return { before, after, growth: after - before, secs, bad };
    };
    const t = await measure(trivial.url, "trivial");
    const k = await measure(control.url, "control");
    const r = await measure(stack.url, "runner");
    const perReq = (m) => ((m.growth * 1024) / N).toFixed(1);
    record(
      "workerd",
      `trivial Worker: workerd RSS growth over ${N} requests`,
      t.growth,
      "MiB",
      `${t.before.toFixed(0)} → ${t.after.toFixed(0)} MiB, ${perReq(t)} KiB/request, ${t.secs.toFixed(1)} s`,
    );
    record(
      "workerd",
      `Runner: workerd RSS growth over the same ${N}`,
      r.growth,
      "MiB",
      `${r.before.toFixed(0)} → ${r.after.toFixed(0)} MiB, ${perReq(r)} KiB/request, ${r.secs.toFixed(1)} s, ${r.bad} 5xx`,
    );
    record(
      "workerd",
      `control Worker (one D1 read or object call and one log line where Runner makes them): growth over the same ${N}`,
      k.growth,
      "MiB",
      `${k.before.toFixed(0)} → ${k.after.toFixed(0)} MiB, ${perReq(k)} KiB/request, ${k.secs.toFixed(1)} s`,
    );
    record("workerd", "Runner growth / trivial growth", r.growth / t.growth, "x", "target ≤ 1.2");
    record("workerd", "Runner growth / control growth", r.growth / k.growth, "x", "what Runner's own code adds to the runtime's share");
  } finally {
    await trivial?.stop();
    await control?.stop();
    rmSync(trivialState, { recursive: true, force: true });
    rmSync(controlState, { recursive: true, force: true });
    stack.startAgent();
  }
}
