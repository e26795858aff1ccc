// `npm run bench`: measures Runner on this machine and prints a table (medians over repeated
// runs), writing the figures to bench/results/latest.json. Nothing here asserts timings.
//   npm run bench                 # every section
//   npm run bench -- dispatch e2e # only these sections
//   npm run bench -- schedules    # the cron tick with 10 vs 10,010 schedules held
//   npm run bench -- webhooks     # deliveries/s of one execution's 1,000 events at DEBUG
//   npm run bench -- workerd      # workerd's memory growth: Runner against a trivial Worker
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { Stack, isTerminal, sleep } from "../test/e2e/stack.ts";
import { importJWK, SignJWT } from "jose";
import { startWranglerDev } from "../scripts/lib/wrangler-dev.mjs";

const ROOT = join(import.meta.dirname, "..");
const A = "bench";
const LOCAL = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
const TWO_TASKS =
  "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: one\n      ansible.builtin.debug:\n        msg: one\n    - name: two\n      ansible.builtin.command: echo two\n";
const b64 = (s) => Buffer.from(s).toString("base64");
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const rows = [];
const results = {
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  at: new Date().toISOString(),
};
const record = (section, metric, value, unit, note = "") => {
  rows.push({ section, metric, value: typeof value === "number" ? Number(value.toFixed(value < 10 ? 3 : 1)) : value, unit, note });
  (results[section] ??= {})[metric] = { value, unit, note };
};

let stack, token;
async function call(method, path, body) {
  return stack.call(method, path, token, body);
}
async function createJob(body) {
  const r = await call("POST", `/jobs/${A}`, { name: "bench", hosts: LOCAL, ...body });
  if (r.status !== 200) throw new Error(`create job: ${r.status} ${r.text}`);
  return r.json.id;
}
async function events(jobId, executionId) {
  const out = [];
  for (let page = 0; ; page++) {
    const r = await call("GET", `/jobs/${A}/${jobId}/executions/${executionId}/events?page=${page}&size=100`);
    out.push(...r.json.results);
    if (r.json.results.length < 100) return out;
  }
}

const sections = {
  /**
   * The cron tick's cost: 10 due schedules among 10 held, then among 10,010 held (10,000 not due).
   * Each round creates 10 date schedules a moment ahead, waits for them, and times `/__scheduled`
   * (which answers once the tick has fired them), then kills their executions (still PENDING: the
   * agent is stopped meanwhile, as the runs would load the machine) and deletes them. That the due
   * query reads only due rows is asserted in test/worker/schedules-cron.test.ts (D1's rows_read).
   */
  async schedules() {
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
      record(
        "schedules",
        `tick, 0 due of ${label}: wall p50`,
        median(empty),
        "ms",
        `min ${Math.min(...empty).toFixed(1)}, max ${Math.max(...empty).toFixed(1)}`,
      );
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
  },

  /**
   * POST start sent → INITIALIZING (the lease handed to a waiting agent) → RUNNING (the agent saw
   * ansible-playbook's playbook_on_start: the process is up and has parsed the playbook).
   * Client and server share this machine's clock.
   */
  async dispatch() {
    const jobId = await createJob({ playbook: b64(TWO_TASKS) });
    const toInit = [],
      toRun = [],
      answeredIn = [],
      toAgent = [];
    for (let i = 0; i < 10; i++) {
      const sent = Date.now();
      const r = await call("POST", `/jobs/${A}/${jobId}/start`, {});
      const answered = Date.now();
      answeredIn.push(answered - sent);
      const id = r.json.execution_id;
      await stack.waitFor(A, jobId, id, token, isTerminal);
      for (let k = 0; k < 20 && agentMarks(id).received === undefined; k++) await sleep(50);
      const received = agentMarks(id).received;
      if (received !== undefined) toAgent.push(received - answered);
      const ev = await events(jobId, id);
      const at = (s) => ev.find((e) => e.event_type === "execution_status" && JSON.stringify(e.message ?? e.data ?? "").includes(s))?.timestamp;
      if (at("INITIALIZING")) toInit.push(at("INITIALIZING") - sent);
      if (at("RUNNING")) toRun.push(at("RUNNING") - sent);
    }
    record("dispatch", "POST start answered p50", median(answeredIn), "ms");
    record("dispatch", "start → INITIALIZING (leased) p50", median(toInit), "ms", "target < 100 ms");
    record(
      "dispatch",
      "start answered → lease in the agent's hands p50",
      median(toAgent),
      "ms",
      `target ≤ 20 ms; negative: the lease arrived before the start's answer (min ${Math.min(...toAgent).toFixed(1)}, max ${Math.max(...toAgent).toFixed(1)})`,
    );
    record("dispatch", "start → RUNNING (playbook_on_start) p50", median(toRun), "ms", "includes ansible-playbook's own start-up");
  },

  /** Wall time of a two-task local playbook: Runner end to end vs bare ansible-playbook vs ansible-runner. */
  async e2e() {
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
    for (let i = 0; i < 7; i++) {
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
    if (runnerCli.length) record("e2e", "Runner / ansible-runner", median(ours) / median(runnerCli), "x", "target < 1");
    recordHops("e2e", hops);
  },

  /** Events per second into one execution through the agent protocol, and paging at 100,000 events. */
  async ingest() {
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
    for (let seq = 1; seq <= N; seq += B) {
      const batch = [];
      for (let k = seq; k < seq + B; k++)
        batch.push({
          seq: k,
          timestamp: Date.now(),
          event_type: "runner_on_ok",
          host: "localhost",
          task: `task ${k}`,
          play: "bench",
          stdout: line,
          data: { changed: false, msg: "x" },
        });
      const r = await agentCall(`/agent/executions/${id}/events`, { attempt: lease.attempt, leaseId: lease.leaseId, events: batch });
      if (r.status !== 200) throw new Error(`upload ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
    const secs = (performance.now() - t0) / 1000;
    record("ingest", "events/s into one execution", N / secs, "events/s", `batches of ${B}; target ≥ 20,000`);
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
  },

  /** Requests/s and latency of GET job and GET jobs under concurrency, against /health as the ceiling. */
  /**
   * Webhook deliveries per second from one execution: a bench agent uploads 1,000 events (two
   * batches of 500) and ends it; a DEBUG callback to a receiver on 127.0.0.1 answers 204 at once.
   * Timed from the first upload to the last delivery received (1,000 events and 4 status changes),
   * so it includes the object's outbox, the queue (wrangler dev's), the consumer's loads and signing.
   */
  async webhooks() {
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
        const events = [];
        for (let k = seq; k < seq + B; k++)
          events.push({
            seq: k,
            timestamp: Date.now(),
            event_type: "runner_on_ok",
            host: "localhost",
            task: `task ${k}`,
            play: "bench",
            stdout: "ok: [localhost]\n",
            data: { changed: false },
          });
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
  },

  async api() {
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
  },

  /** 100 executions started at once over 4 agents: time until all are terminal, none lost, none twice. */
  async fanout() {
    const jobId = await createJob({ playbook: b64(TWO_TASKS) });
    // Four agents in all: the stack's own plus three more, each running up to 4 at once.
    const extra = [];
    for (let i = 0; i < 3; i++) {
      const cfg = join(stack.dir, `fan-${i}.json`);
      await stack.registerAgent(cfg, `fan-${i}`);
      extra.push(stack.startAgent(cfg));
    }
    try {
      const t0 = performance.now();
      const ids = await Promise.all(Array.from({ length: 100 }, async () => (await call("POST", `/jobs/${A}/${jobId}/start`, {})).json.execution_id));
      const final = await Promise.all(ids.map((id) => stack.waitFor(A, jobId, id, token, isTerminal, 600_000)));
      const secs = (performance.now() - t0) / 1000;
      const ok = final.filter((e) => e.status === "SUCCESS").length;
      const twice = final.filter((e) => e.timers.length !== 1 || (e.attempt ?? 1) !== 1).length;
      const agents = new Set(final.map((e) => e.agent_id)).size;
      record("fanout", "100 executions over 4 agents: all terminal", secs, "s", `${ok} SUCCESS, ${100 - ok} other, ${twice} run twice, ${agents} agents used`);
      // The machine's floor: the same 100 runs bare, as many at once as the account's limit lets Runner run (10).
      const floor = await bareFanout(100, 10);
      record("fanout", "100 bare ansible-playbook runs, 10 at once (the floor)", floor, "s");
      record("fanout", "Runner / floor", secs / floor, "x", "target ≤ 1.15");
    } finally {
      await Promise.all(extra.map((c) => stack.stopAgent(c)));
    }
  },

  /**
   * workerd's memory growth over the same 10,000 mixed requests sent to Runner and to a trivial
   * Worker (bench/trivial-worker, `fetch() { return new Response("ok") }`) under its own `wrangler
   * dev` in the same run: what the local runtime grows by on its own, and what Runner adds. Each
   * request carries a token of its own (10,000 distinct tokens), so a per-token cache would show.
   * RSS is summed over each `wrangler dev`'s workerd processes, from /proc.
   */
  async workerd() {
    await stack.stopAgent(); // its polls would be requests the trivial Worker does not get
    const jobId = await createJob({ playbook: b64(TWO_TASKS) });
    const started = await call("POST", `/jobs/${A}/${jobId}/start`, {});
    const execId = started.json.execution_id;
    await call("POST", `/jobs/${A}/${jobId}/executions/${execId}/kill`, {});
    process.stderr.write("bench: workerd: starting the trivial Worker\n");
    const trivialState = mkdtempSync(join(tmpdir(), "runner-trivial-"));
    const trivial = await startWranglerDev({ cwd: join(ROOT, "bench/trivial-worker"), persistTo: trivialState });
    try {
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
      const groups = workerdGroups(trivial.child.pid);
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
      record("workerd", "Runner growth / trivial growth", r.growth / t.growth, "x", "target ≤ 1.2");
    } finally {
      await trivial.stop();
      rmSync(trivialState, { recursive: true, force: true });
      stack.startAgent();
    }
  },

  /** The agent's peak RSS idle and while streaming a playbook printing 100,000 lines. */
  async memory() {
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
    const r = await call("POST", `/jobs/${A}/${jobId}/start`, {});
    let peak = 0;
    const poll = setInterval(() => (peak = Math.max(peak, rss())), 100);
    const followStart = performance.now();
    const { bytes } = await followToEnd(jobId, r.json.execution_id);
    clearInterval(poll);
    record("memory", "agent peak RSS streaming 100k lines", Math.max(peak, 0), "MiB", `VmHWM ${hwm().toFixed(0)} MiB; target < 150`);
    record("memory", "log follow (SSE) of that run", performance.now() - followStart, "ms", `${(bytes / 2 ** 20).toFixed(1)} MiB streamed live`);
    const lines = await countLogLines(jobId, r.json.execution_id);
    record("memory", "lines in that log (GET …/log, streamed)", lines, "lines");
  },
};

/** A token of its own for request `i`: the stack's signing key (from its env file), subject `bench-<i>`. */
let benchKey;
async function signBenchToken(i) {
  if (!benchKey) {
    const vars = readFileSync(join(stack.dir, ".dev.vars"), "utf8");
    const jwk = JSON.parse(/^JWT_PRIVATE_KEY='(.*)'$/m.exec(vars)[1]);
    benchKey = { jwk, key: await importJWK(jwk, "ES256") };
  }
  return new SignJWT({ accounts: [A], role: "viewer" })
    .setProtectedHeader({ alg: "ES256", kid: benchKey.jwk.kid })
    .setSubject(`bench-${i}`)
    .setIssuer("runner")
    .setIssuedAt()
    .setExpirationTime("2h")
    .sign(benchKey.key);
}

/** /proc: each process's parent, process group and name. */
function processes() {
  const out = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const [, ppid, pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.push({ pid: Number(d), ppid: Number(ppid), pgrp: Number(pgrp), name });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * This bench's workerd processes, split into the trivial Worker's (the process group of its
 * `wrangler dev`) and Runner's (every other workerd descended from this process).
 */
function workerdGroups(trivialGroup) {
  return () => {
    const all = processes();
    const parent = new Map(all.map((p) => [p.pid, p.ppid]));
    const ours = (pid) => {
      for (let p = pid, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) if (p === process.pid) return true;
      return false;
    };
    const workerd = all.filter((p) => p.name === "workerd" && ours(p.pid));
    return {
      trivial: workerd.filter((p) => p.pgrp === trivialGroup).map((p) => p.pid),
      runner: workerd.filter((p) => p.pgrp !== trivialGroup).map((p) => p.pid),
    };
  };
}

const rssMiB = (pids) => pids.reduce((sum, pid) => sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0), 0) / 1024;

/** Seconds for `n` bare ansible-playbook runs of the two-task playbook, `parallel` at a time. */
async function bareFanout(n, parallel) {
  const dir = mkdtempSync(join(tmpdir(), "runner-fan-"));
  writeFileSync(join(dir, "pb.yml"), TWO_TASKS);
  writeFileSync(join(dir, "inv.ini"), "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n");
  const { spawn } = await import("node:child_process");
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next++ < n) {
        await new Promise((res, rej) =>
          spawn("ansible-playbook", ["-i", join(dir, "inv.ini"), join(dir, "pb.yml")], { stdio: "ignore" }).on("exit", (c) =>
            c === 0 ? res() : rej(new Error(`exit ${c}`)),
          ),
        );
      }
    }),
  );
  rmSync(dir, { recursive: true, force: true });
  return (performance.now() - t0) / 1000;
}

async function countLogLines(jobId, executionId) {
  const res = await fetch(`${stack.url}/jobs/${A}/${jobId}/executions/${executionId}/log`, { headers: { authorization: `Bearer ${token}` } });
  let n = 0;
  for await (const chunk of res.body) for (const b of chunk) if (b === 10) n++;
  return n;
}

/**
 * Follows the log live (`?follow=true`, Server-Sent Events as the dashboard does) until the execution ends; falls back to
 * polling if the stream is cut. Answers the bytes, when the first output past the status lines
 * arrived and when the stream closed (epoch ms); `onChunk` sees every piece as it arrives.
 */
async function followToEnd(jobId, executionId, onChunk) {
  let bytes = 0;
  let firstAt;
  try {
    const res = await fetch(`${stack.url}/jobs/${A}/${jobId}/executions/${executionId}/log?follow=true`, {
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    });
    const dec = new TextDecoder();
    for await (const chunk of res.body) {
      bytes += chunk.length;
      if (
        firstAt === undefined &&
        dec
          .decode(chunk)
          .split("\n")
          .some((l) => l.startsWith("data: ") && !l.startsWith("data: [runner]") && l.length > 6)
      )
        firstAt = Date.now();
      onChunk?.(chunk);
      if (process.env.BENCH_DEBUG_FOLLOW) process.stderr.write(`follow ${Date.now()} ${JSON.stringify(dec.decode(chunk).slice(0, 80))}\n`);
    }
  } catch {
    await stack.waitFor(A, jobId, executionId, token, isTerminal);
  }
  return { bytes, firstAt, closedAt: Date.now() };
}

/** The agent's hop marks of an execution, from its "execution finished" log line (run.ts). */
function agentMarks(executionId, output = stack.agentOutput) {
  for (const line of output.split("\n").reverse()) {
    if (!line.includes("execution finished") || !line.includes(executionId)) continue;
    const m = /hops=("(?:[^"\\]|\\.)*"|\{[^ ]*\})/.exec(line);
    if (!m) return {};
    const v = JSON.parse(m[1]);
    return typeof v === "string" ? JSON.parse(v) : v;
  }
  return {};
}

/**
 * One run's hops, in epoch ms of this machine's one clock (client, server and agent share it):
 * the client's (start sent/answered, first output seen, stream closed, final status read), the
 * server's (status events' timestamps) and the agent's marks.
 */
async function hopsOf(jobId, executionId, client, output) {
  const ev = await events(jobId, executionId);
  const statusAt = (want) => ev.find((e) => e.event_type === "execution_status" && want(/^\[runner\] execution (\w+)/.exec(e.message ?? "")?.[1]))?.timestamp;
  for (let i = 0; i < 20 && !agentMarks(executionId, output ?? stack.agentOutput).reported; i++) await sleep(25);
  const a = agentMarks(executionId, output ?? stack.agentOutput);
  return [
    ["start sent", client.sent],
    ["start answered", client.answered],
    ["lease granted (INITIALIZING stored)", statusAt((s) => s === "INITIALIZING")],
    ["agent received the lease", a.received],
    ["workspace ready", a.workspaceReady],
    ["ansible-playbook spawned", a.spawned],
    ["first event from ansible-playbook", a.firstEvent],
    ["RUNNING stored", statusAt((s) => s === "RUNNING")],
    ["first output seen by the follower", client.firstOutput],
    ["process exited (output read)", a.exited],
    ["last events accepted", a.flushed],
    ["processes and workspace cleaned up", a.cleanedUp],
    ["final status stored", statusAt((s) => ["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"].includes(s))],
    ["agent has the final status's answer", a.reported],
    ["log stream closed", client.closed],
    ["final status read", client.finalRead],
  ];
}

/** Per hop: the median time from the start sent, and from the hop before (in the order listed). */
function recordHops(section, runs) {
  if (!runs.length) return;
  const names = runs[0].map(([n]) => n);
  let prev = null;
  for (const name of names.slice(1)) {
    const abs = runs.map((r) => r.find(([n]) => n === name)?.[1] - r[0][1]).filter(Number.isFinite);
    const rel = prev === null ? abs : runs.map((r) => r.find(([n]) => n === name)?.[1] - r.find(([n]) => n === prev)?.[1]).filter(Number.isFinite);
    record(section, `hop: ${name}`, median(abs), "ms from start sent", prev ? `+${median(rel).toFixed(1)} ms after "${prev}" (p50 of ${rel.length})` : "");
    prev = name;
  }
}

const wanted = process.argv.slice(2).filter((a) => sections[a]);
const order = wanted.length ? wanted : Object.keys(sections);
stack = await new Stack().start();
token = await stack.token([A]);
try {
  for (const name of order) {
    process.stderr.write(`bench: ${name}…\n`);
    try {
      await sections[name]();
    } catch (e) {
      record(name, "error", String(e.message ?? e).slice(0, 200), "");
    }
  }
} finally {
  await stack.stop();
}
console.table(rows);
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/latest.json"), JSON.stringify({ ...results, rows }, null, 2));
console.log("written: bench/results/latest.json");
