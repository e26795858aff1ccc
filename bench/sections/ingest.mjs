import { A, TWO_TASKS, b64, call, createJob, median, record, serverCpuMs, stack, token, okEvents } from "../lib/common.mjs";

/** Events per second into one execution through the agent protocol, and paging at 100,000 events. */
export async function ingest() {
  const jobId = await createJob({ playbook: b64(TWO_TASKS) });
  // A bench agent of its own (not the stack's) that leases the execution and uploads directly.
  await stack.stopAgent();
  const reg = await stack.call("POST", "/agent/register", await stack.token("*"), { name: "bench-ingest", version: "bench" });
  const cred = reg.json.credential;
  const agentCall = (path, body) =>
    fetch(stack.url + path, { method: "POST", headers: { authorization: `Bearer ${cred}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  const start = await call("POST", `/jobs/${A}/${jobId}/start`, {});
  const id = start.json.execution_id;
  let lease;
  for (let i = 0; i < 5 && !lease; i++) {
    const r = await agentCall("/agent/lease", { running: [], capacity: 1, waitMs: 5000 });
    if (r.status === 200) lease = await r.json();
  }
  if (!lease || lease.executionId !== id) throw new Error("bench agent got no lease");
  await agentCall(`/agent/executions/${id}/status`, { attempt: lease.attempt, leaseId: lease.leaseId, status: "RUNNING" });
  const N = 100_000,
    B = Number(process.env.BENCH_INGEST_BATCH ?? 2000);
  const line = 'ok: [localhost] => {\n    "msg": "an event of typical size for a debug task"\n}\n';
  const t0 = performance.now();
  const cpu0 = { all: serverCpuMs(), workerd: serverCpuMs("workerd") };
  for (let seq = 1; seq <= N; seq += B) {
    const batch = okEvents(seq, seq + B, line, { changed: false, msg: "x" });
    const r = await agentCall(`/agent/executions/${id}/events`, { attempt: lease.attempt, leaseId: lease.leaseId, events: batch });
    if (r.status !== 200) throw new Error(`upload ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
  }
  const secs = (performance.now() - t0) / 1000;
  const cpu = { all: serverCpuMs() - cpu0.all, workerd: serverCpuMs("workerd") - cpu0.workerd };
  record("ingest", "events/s into one execution", N / secs, "events/s", `batches of ${B}; target ≥ 20,000`);
  record(
    "ingest",
    "server CPU per 1,000 events",
    (cpu.all / N) * 1000,
    "ms",
    `workerd alone ${((cpu.workerd / N) * 1000).toFixed(1)} ms; at most ${Math.round(N / (cpu.all / 1000))} events/s per core`,
  );
  await agentCall(`/agent/executions/${id}/status`, { attempt: lease.attempt, leaseId: lease.leaseId, status: "SUCCESS", hostStats: {}, failedHosts: [] });
  const pageTimes = [];
  for (const page of [0, 10, 500, 999]) {
    const t = performance.now();
    const r = await call("GET", `/jobs/${A}/${jobId}/executions/${id}/events?page=${page}&size=100`);
    pageTimes.push(performance.now() - t);
    if (r.json.results.length !== 100) throw new Error(`page ${page}: ${r.json.results.length}`);
  }
  record("ingest", "events page (size 100) at 100k events p50", median(pageTimes), "ms", "pages 0,10,500,999");
  const t = performance.now();
  const r = await call("GET", `/jobs/${A}/${jobId}/executions/${id}/events?after=99900&size=100`);
  record("ingest", "events after=99900 at 100k events", performance.now() - t, "ms", `${r.json.results?.length} results`);
  const tl = performance.now();
  const res = await fetch(`${stack.url}/jobs/${A}/${jobId}/executions/${id}/log`, { headers: { authorization: `Bearer ${token}` } });
  let bytes = 0;
  for await (const chunk of res.body) bytes += chunk.length;
  record("ingest", "whole log (100k events) download", performance.now() - tl, "ms", `${(bytes / 2 ** 20).toFixed(1)} MiB streamed`);
  stack.startAgent();
}
