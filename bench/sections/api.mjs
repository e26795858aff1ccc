import { A, TWO_TASKS, b64, createJob, median, pct, record, serverCpuMs, stack, token } from "../lib/common.mjs";

/** Requests/s and latency of GET job and GET jobs under concurrency, against /health as the ceiling. */
export async function api() {
  const jobId = await createJob({ playbook: b64(TWO_TASKS) });
  for (let i = 0; i < 30; i++) await createJob({ playbook: b64(TWO_TASKS) });
  const load = async (path, auth, conc = 16, n = 1500) => {
    const lat = [];
    let next = 0;
    const t0 = performance.now();
    const cpu0 = serverCpuMs();
    const w0 = serverCpuMs("workerd");
    await Promise.all(
      Array.from({ length: conc }, async () => {
        while (next++ < n) {
          const t = performance.now();
          const r = await fetch(stack.url + path, { headers: auth ? { authorization: `Bearer ${token}` } : {} });
          await r.arrayBuffer();
          if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
          lat.push(performance.now() - t);
        }
      }),
    );
    return {
      rps: n / ((performance.now() - t0) / 1000),
      p50: median(lat),
      p99: pct(lat, 99),
      cpu: (serverCpuMs() - cpu0) / n,
      workerd: (serverCpuMs("workerd") - w0) / n,
    };
  };
  // Interleaved rounds: the machine is shared, so each route sees the same mix of conditions, and
  // the ratios are taken round by round (the median of the rounds' ratios).
  const ROUNDS = 5;
  for (const [path, auth] of [
    ["/health", false],
    [`/jobs/${A}/${jobId}`, true],
    [`/jobs/${A}?size=20`, true],
  ])
    await load(path, auth, 16, 100); // warm-up
  const runs = { ceiling: [], one: [], list: [] };
  for (let round = 0; round < ROUNDS; round++) {
    runs.ceiling.push(await load("/health", false, 16, 300));
    runs.one.push(await load(`/jobs/${A}/${jobId}`, true, 16, 300));
    runs.list.push(await load(`/jobs/${A}?size=20`, true, 16, 300));
  }
  const summary = (xs) => ({ rps: median(xs.map((x) => x.rps)), p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)) });
  const ceiling = summary(runs.ceiling);
  const one = summary(runs.one);
  const list = summary(runs.list);
  const ratio = (xs) => median(xs.map((x, i) => x.rps / runs.ceiling[i].rps));
  // CPU per request on the server side (workerd and wrangler's node): what throughput is made of
  // when the machine is busy, and far less sensitive to the load of others than req/s.
  const cpu = (xs, k = "cpu") => xs.reduce((a, x) => a + x[k], 0) / xs.length;
  record("api", "trivial route (/health) req/s", ceiling.rps, "req/s", `p50 ${ceiling.p50.toFixed(1)} ms, p99 ${ceiling.p99.toFixed(1)} ms`);
  record("api", "GET /jobs/{alias}/{id} req/s", one.rps, "req/s", `p50 ${one.p50.toFixed(1)} ms, p99 ${one.p99.toFixed(1)} ms`);
  record("api", "GET /jobs/{alias} req/s", list.rps, "req/s", `p50 ${list.p50.toFixed(1)} ms, p99 ${list.p99.toFixed(1)} ms`);
  for (const [name, xs] of [
    ["/health", runs.ceiling],
    ["GET job", runs.one],
    ["GET jobs", runs.list],
  ])
    record(
      "api",
      `server CPU per request, ${name}`,
      cpu(xs),
      "ms",
      `workerd alone ${cpu(xs, "workerd").toFixed(2)} ms; with wrangler's and the agent's node, from /proc`,
    );
  record("api", "GET job / trivial", ratio(runs.one), "x", `median of ${ROUNDS} interleaved rounds; target ≥ 0.9`);
  record("api", "GET jobs / trivial", ratio(runs.list), "x", `median of ${ROUNDS} interleaved rounds; target ≥ 0.8`);
}
