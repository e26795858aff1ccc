import { createServer } from "node:http";
import { sleep } from "../../test/e2e/stack.ts";
import { A, TWO_TASKS, b64, call, createJob, record, stack, okEvents } from "../lib/common.mjs";

/**
 * Webhook deliveries per second from one execution: a bench agent uploads 1,000 events (two
 * batches of 500) and ends it; a DEBUG callback to a receiver on 127.0.0.1 answers 204 at once.
 * Timed from the first upload to the last delivery received (1,000 events and 4 status changes),
 * so it includes the object's outbox, the queue (wrangler dev's), the consumer's loads and signing.
 */
export async function webhooks() {
  let got = 0;
  let last = 0;
  const seen = new Set();
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const id = req.headers["runner-delivery"];
      if (!seen.has(id)) {
        seen.add(id);
        got++;
        last = performance.now();
      }
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}/hook`;
  try {
    const jobId = await createJob({ playbook: b64(TWO_TASKS), callbacks: [{ url, level: "DEBUG" }] });
    await stack.stopAgent();
    const reg = await stack.call("POST", "/agent/register", await stack.token("*"), { name: "bench-webhooks", version: "bench" });
    const cred = reg.json.credential;
    const agentCall = (path, body) =>
      fetch(stack.url + path, {
        method: "POST",
        headers: { authorization: `Bearer ${cred}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const id = (await call("POST", `/jobs/${A}/${jobId}/start`, {})).json.execution_id;
    let lease;
    for (let i = 0; i < 5 && !lease; i++) {
      const r = await agentCall("/agent/lease", { running: [], capacity: 1, waitMs: 5000 });
      if (r.status === 200) lease = await r.json();
    }
    if (!lease || lease.executionId !== id) throw new Error("bench agent got no lease");
    const ref = { attempt: lease.attempt, leaseId: lease.leaseId };
    await agentCall(`/agent/executions/${id}/status`, { ...ref, status: "RUNNING" });
    // PENDING, INITIALIZING and RUNNING are delivered before the clock starts.
    for (let i = 0; i < 100 && got < 3; i++) await sleep(100);
    const before = got;
    const N = 1000,
      B = 500;
    const t0 = performance.now();
    for (let seq = 1; seq <= N; seq += B) {
      const events = okEvents(seq, seq + B, "ok: [localhost]\n", { changed: false });
      const r = await agentCall(`/agent/executions/${id}/events`, { ...ref, events });
      if (r.status !== 200) throw new Error(`upload ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
    await agentCall(`/agent/executions/${id}/status`, { ...ref, status: "SUCCESS", hostStats: {}, failedHosts: [] });
    const want = before + N + 1;
    const until = Date.now() + 300_000;
    while (got < want && Date.now() < until) await sleep(50);
    if (got < want) throw new Error(`only ${got - before} of ${N + 1} deliveries arrived`);
    const secs = (last - t0) / 1000;
    record(
      "webhooks",
      "deliveries/s from one execution (1,000 events at DEBUG)",
      (N + 1) / secs,
      "deliveries/s",
      `${N + 1} deliveries in ${secs.toFixed(1)} s, receiver on 127.0.0.1`,
    );
    const list = await call("GET", `/jobs/${A}/${jobId}/executions/${id}/deliveries?size=1`);
    record("webhooks", "deliveries recorded", list.json.totalSize, "rows");
  } finally {
    server.close();
    stack.startAgent();
  }
}
