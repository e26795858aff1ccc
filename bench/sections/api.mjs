import { A, TWO_TASKS, b64, createJob, median, pct, record, stack, token } from "../lib/common.mjs";

/** Requests/s and latency of GET job and GET jobs under concurrency, against /health as the ceiling. */
export async function api() {
  const jobId = await createJob({ playbook: b64(TWO_TASKS) });
  for (let i = 0; i < 30; i++) await createJob({ playbook: b64(TWO_TASKS) });
  const load = async (path, auth, conc = 16, n = 1500) => {
    const lat = [];
    let next = 0;
    const t0 = performance.now();
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
    return { rps: n / ((performance.now() - t0) / 1000), p50: median(lat), p99: pct(lat, 99) };
  };
  const ceiling = await load("/health", false);
  const one = await load(`/jobs/${A}/${jobId}`, true);
  const list = await load(`/jobs/${A}?size=20`, true);
  record("api", "trivial route (/health) req/s", ceiling.rps, "req/s", `p50 ${ceiling.p50.toFixed(1)} ms, p99 ${ceiling.p99.toFixed(1)} ms`);
  record("api", "GET /jobs/{alias}/{id} req/s", one.rps, "req/s", `p50 ${one.p50.toFixed(1)} ms, p99 ${one.p99.toFixed(1)} ms`);
  record("api", "GET /jobs/{alias} req/s", list.rps, "req/s", `p50 ${list.p50.toFixed(1)} ms, p99 ${list.p99.toFixed(1)} ms`);
  record("api", "GET job / trivial", one.rps / ceiling.rps, "x", "target ≥ 0.5");
  record("api", "GET jobs / trivial", list.rps / ceiling.rps, "x", "target ≥ 0.5");
}
