// The growth simulator (docs/SCALING.md): drives the real Worker under `wrangler dev` (loopback only,
// its own temporary state) with simulated agents speaking the real protocol over HTTP (register,
// long-poll lease, heartbeats, event uploads, status reports; a fake executor emitting the event
// stream of a typical job, no Ansible), simulated users (starts at a rate, some following the log)
// and schedules (a cron tick every 30 s, as the Cron Trigger would every minute).
//
//   npm run simulate -- --agents 120 --rate 12 --schedules 40 --minutes 3
//
// It grows in steps (default: 15 %, 40 %, 100 % of --agents and --rate), each step M/steps minutes,
// and prints per step what the Worker counted server-side (worker/lib/meter.ts, enabled by
// RUNNER_METER=true and read at GET /__meter): requests per second to the busiest object of each
// Durable Object class, D1 statements per second, queue messages; and client-side: dispatch latency
// (start sent → lease received by an agent) p50/p99, errors, executions finished — and the first
// step where the curve bends. Bounded: it stops after --minutes, and never registers more than
// --agents agents.
//
// Options: --agents N (120) --rate R executions/s at the last step (12) --schedules S (40)
// --minutes M (3) --steps 0.15,0.4,1 --shared 0.5 (share of agents and work in the shared pool)
// --followers 0.05 (share of executions whose log a user follows) --task-ms 400 (each of the 5 tasks)
// --var K=V (a Worker var, repeatable) --json FILE (also write the figures).
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { startStack } from "../test/fixtures/stack.ts";
import { fakePlaybookBatches } from "./lib/fake-playbook.mjs";

const args = parseArgs(process.argv.slice(2));
const N = int(args.agents, 120);
const RATE = num(args.rate, 12);
const SCHEDULES = int(args.schedules, 40);
const MINUTES = num(args.minutes, 3);
const STEPS = (args.steps ?? "0.15,0.4,1")
  .split(",")
  .map(Number)
  .filter((x) => x > 0 && x <= 1);
const SHARED = num(args.shared, 0.5);
const FOLLOWERS = num(args.followers, 0.05);
const TASK_MS = int(args.taskMs ?? args["task-ms"], 400);
const ACCOUNTS = 4; // accounts with their own agents, and as many served by the shared pool
const STEP_MS = (MINUTES * 60_000) / STEPS.length;
const HEARTBEAT_MS = 5_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const vars = { RUNNER_METER: "true", ACCOUNT_CONCURRENCY: "1000", ...Object.fromEntries([args.var ?? []].flat().map((kv) => kv.split("="))) };
console.log(
  `simulate: up to ${N} agents (${Math.round(SHARED * 100)} % shared), up to ${RATE} starts/s, ${SCHEDULES} schedules, ${MINUTES} min in ${STEPS.length} steps; vars ${JSON.stringify(vars)}`,
);

const stack = await startStack({ vars });
const stopAll = new AbortController();
let exiting = false;
const cleanup = async () => {
  if (exiting) return;
  exiting = true;
  stopAll.abort();
  await stack.stop();
};
process.on("SIGINT", () => cleanup().then(() => process.exit(130)));

try {
  await main();
} finally {
  await cleanup();
}

async function main() {
  const url = stack.url;
  const operator = await stack.token("*");
  // ---- seed: accounts' jobs, service accounts and schedules ---------------------------------------
  const own = Array.from({ length: ACCOUNTS }, (_, i) => `own-${i + 1}`);
  const pool = Array.from({ length: ACCOUNTS }, (_, i) => `pool-${i + 1}`);
  const jobs = new Map();
  const userTokens = new Map();
  for (const alias of [...own, ...pool]) {
    const admin = await stack.token([alias], "admin");
    userTokens.set(alias, await stack.token([alias], "user"));
    const r = await stack.call("POST", `/jobs/${alias}`, admin, {
      name: "deploy",
      playbook: Buffer.from("- hosts: all\n  tasks: [ping: {}]\n").toString("base64"),
      hosts: [{ id: "web1" }],
    });
    if (r.status !== 200) throw new Error(`job: ${r.status} ${r.text}`);
    jobs.set(alias, r.json.id);
  }
  const regTokens = new Map();
  for (const alias of own) regTokens.set(alias, await stack.registrationToken(alias));
  // Schedules on the shared pool's accounts, every minute.
  for (let i = 0; i < SCHEDULES; i++) {
    const alias = pool[i % pool.length];
    if (i < pool.length) {
      const sa = await stack.call("POST", `/serviceAccounts/${alias}`, await stack.token([alias], "admin"), {
        alias: "cron",
        username: `cron-${alias}-${Date.now()}`,
        password: "a long passphrase",
        role: "user",
      });
      if (sa.status !== 200) throw new Error(`service account: ${sa.status} ${sa.text}`);
    }
    const r = await stack.call("POST", `/jobs/${alias}/${jobs.get(alias)}/schedules`, userTokens.get(alias), {
      description: `sim ${i}`,
      serviceAccountAlias: "cron",
      trigger: { type: "cron", expression: "* * * * *" },
    });
    if (r.status !== 200) throw new Error(`schedule: ${r.status} ${r.text}`);
  }

  // ---- shared state -----------------------------------------------------------------------------
  const startedAt = new Map(); // executionId → performance.now() of the start sent
  const stats = newStats();
  const agents = [];
  let seq = 0;

  const request = async (method, path, token, body, signal) => {
    stats.requests++;
    const headers = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    const text = await res.text();
    return { status: res.status, json: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : undefined, text };
  };
  const fail = (what, detail) => {
    if (stopAll.signal.aborted) return; // the run is over: calls cut short by the shutdown are not errors
    stats.errors++;
    stats.errorKinds[what] = (stats.errorKinds[what] ?? 0) + 1;
    if (stats.errors <= 5) console.error(`  error: ${what} ${detail ?? ""}`.slice(0, 300));
  };

  /** One fake run of a lease: heartbeat at once and every 5 s, RUNNING, the uploads task by task, SUCCESS. */
  const runLease = async (a, lease) => {
    const ref = { attempt: lease.attempt, leaseId: lease.leaseId };
    const base = `/agent/executions/${lease.executionId}`;
    const call = async (what, path, body) => {
      try {
        const r = await request("POST", path, a.credential, body);
        if (r.status !== 200) fail(what, `${r.status} ${r.text}`);
        return r;
      } catch (e) {
        fail(what, e.message);
        return null;
      }
    };
    await call("heartbeat", `${base}/heartbeat`, ref);
    let beating = true;
    let wake;
    const beat = (async () => {
      while (beating) {
        await new Promise((r) => {
          wake = r;
          setTimeout(r, HEARTBEAT_MS);
        });
        if (beating) await call("heartbeat", `${base}/heartbeat`, ref);
      }
    })();
    await call("status", `${base}/status`, { ...ref, status: "RUNNING" });
    for (const events of fakePlaybookBatches({ hosts: 1, tasks: 5 })) {
      await sleep(TASK_MS);
      await call("events", `${base}/events`, { ...ref, events });
    }
    // The heartbeat loop ends before the terminal report (one in flight is awaited), as the agent's does.
    beating = false;
    wake?.();
    await beat;
    await call("status", `${base}/status`, {
      ...ref,
      status: "SUCCESS",
      exitCode: 0,
      hostStats: { web1: { ok: 5, changed: 2, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 } },
    });
    stats.finished++;
  };

  const agentLoop = async (a) => {
    while (!stopAll.signal.aborted) {
      let r;
      try {
        r = await request("POST", "/agent/lease", a.credential, { capacity: 1, concurrency: 1, waitMs: 25_000 }, stopAll.signal);
      } catch (e) {
        if (stopAll.signal.aborted) return;
        fail("lease", e.message);
        await sleep(1_000);
        continue;
      }
      if (r.status === 204) continue;
      if (r.status !== 200) {
        fail("lease", `${r.status} ${r.text}`);
        await sleep(1_000);
        continue;
      }
      const started = startedAt.get(r.json.executionId);
      if (started !== undefined) {
        const ms = performance.now() - started.t0;
        stats.latencies.push(ms);
        (started.shared ? stats.sharedLatencies : stats.ownLatencies).push(ms);
        startedAt.delete(r.json.executionId);
      } else stats.scheduledLeases++;
      await runLease(a, r.json);
    }
  };

  const registerAgents = async (target, until) => {
    while (agents.length < target && performance.now() < until) {
      const shared = agents.filter((a) => a.shared).length < Math.round(target * SHARED);
      const alias = own[agents.length % own.length];
      const body = { name: `sim-${++seq}`, hostname: `sim-${seq}.local`, version: "0.1.0", concurrency: 1, ...(shared ? {} : { token: regTokens.get(alias) }) };
      const r = await stack.call("POST", "/agent/register", shared ? operator : null, body);
      if (r.status !== 200) throw new Error(`register: ${r.status} ${r.text}`);
      const a = { credential: r.json.credential, shared };
      agents.push(a);
      void agentLoop(a);
    }
  };

  const startOne = async (i) => {
    // Half of the work (by default) in accounts without agents: it waits in the shared pool.
    const shared = (i * 0.6180339887) % 1 < SHARED; // an even spread of the share over the starts
    const accounts = shared ? pool : own;
    const alias = accounts[i % accounts.length];
    const t0 = performance.now();
    try {
      const r = await request("POST", `/jobs/${alias}/${jobs.get(alias)}/start`, userTokens.get(alias));
      if (r.status !== 200) return fail("start", `${r.status} ${r.text}`);
      startedAt.set(r.json.execution_id, { t0, shared });
      stats.started++;
      if (Math.random() < FOLLOWERS) {
        // A user follows the log to the end (plain text, as `curl -N`).
        void request(
          "GET",
          `/jobs/${alias}/${jobs.get(alias)}/executions/${r.json.execution_id}/log?follow=true`,
          userTokens.get(alias),
          undefined,
          stopAll.signal,
        ).then(
          (f) => (f.status === 200 ? stats.follows++ : fail("follow", `${f.status}`)),
          (e) => stopAll.signal.aborted || fail("follow", e.message),
        );
      }
    } catch (e) {
      fail("start", e.message);
    }
  };

  // The cron: every 30 s, as the trigger would (each schedule here is due once a minute).
  const cron = (async () => {
    while (!stopAll.signal.aborted) {
      await sleep(30_000);
      if (stopAll.signal.aborted) return;
      const t0 = performance.now();
      try {
        const r = await fetch(`${url}/__scheduled?cron=${encodeURIComponent("* * * * *")}`, { signal: stopAll.signal });
        await r.text();
        stats.ticks.push(performance.now() - t0);
      } catch (e) {
        if (!stopAll.signal.aborted) fail("cron", e.message);
      }
    }
  })();
  void cron;

  // ---- the steps ------------------------------------------------------------------------------------
  const results = [];
  // A hard bound: registering agents or a step on a starved machine must not run on forever.
  const deadline = performance.now() + MINUTES * 60_000 * 1.5 + 60_000;
  const overtime = () => performance.now() > deadline;
  let n = 0;
  for (const [k, frac] of STEPS.entries()) {
    const target = Math.max(1, Math.round(N * frac));
    const rate = Math.max(0.1, RATE * frac);
    await registerAgents(target, deadline);
    if (overtime()) {
      console.log(`\nstep ${k + 1}: not run (the time bound passed while registering ${target} agents: ${agents.length} registered)`);
      break;
    }
    await sleep(1_000); // the new agents' first polls are open
    Object.assign(stats, newStats());
    await (await fetch(`${url}/__meter?reset=1`)).text();
    const t0 = performance.now();
    const until = t0 + STEP_MS;
    // Starts at `rate` per second, evenly spaced.
    while (performance.now() < until) {
      void startOne(n++);
      await sleep(1000 / rate);
    }
    const secs = (performance.now() - t0) / 1000;
    const meter = (await (await fetch(`${url}/__meter`)).json()).counts;
    const row = summarize(k + 1, target, rate, secs, stats, meter);
    results.push(row);
    printRow(row, k === 0);
  }
  if (results.length === 0) return;
  const bend = findBend(results);
  console.log(`\n${bend}`);
  if (args.json)
    writeFileSync(args.json, JSON.stringify({ args: { N, RATE, SCHEDULES, MINUTES, STEPS, SHARED, FOLLOWERS, TASK_MS, vars }, results, bend }, null, 2));
}

function newStats() {
  return {
    requests: 0,
    errors: 0,
    errorKinds: {},
    started: 0,
    finished: 0,
    follows: 0,
    scheduledLeases: 0,
    latencies: [],
    sharedLatencies: [],
    ownLatencies: [],
    ticks: [],
  };
}

function pct(xs, p) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function busiest(meter, cls) {
  let best = null;
  for (const [k, v] of Object.entries(meter.objects.byObject)) {
    if (!k.startsWith(`${cls}:`)) continue;
    if (!best || v > best[1]) best = [k.slice(cls.length + 1), v];
  }
  return best;
}

function summarize(step, agents, rate, secs, s, meter) {
  const per = (x) => x / secs;
  const b = (cls) => {
    const x = busiest(meter, cls);
    return x
      ? { name: x[0].length > 20 ? `${x[0].slice(0, 8)}…` : x[0], rps: per(x[1]), total: per(meter.objects.byClass[cls] ?? 0) }
      : { name: "-", rps: 0, total: 0 };
  };
  return {
    step,
    agents,
    offered: rate,
    seconds: secs,
    httpRps: per(s.requests),
    started: per(s.started),
    finished: per(s.finished),
    scheduledLeases: s.scheduledLeases,
    dispatcher: b("DISPATCHER"),
    execution: b("EXECUTION"),
    agent: b("AGENT"),
    d1: {
      rps: per(meter.d1.reads + meter.d1.writes),
      reads: per(meter.d1.reads),
      writes: per(meter.d1.writes),
      indexWrites: per(meter.d1.byStatement["INSERT executions"] ?? 0),
      top: topStatements(meter),
    },
    queue: per(meter.queue.messages),
    p50: pct(s.latencies, 50),
    p99: pct(s.latencies, 99),
    shared: { p50: pct(s.sharedLatencies, 50), p99: pct(s.sharedLatencies, 99), n: s.sharedLatencies.length },
    own: { p50: pct(s.ownLatencies, 50), p99: pct(s.ownLatencies, 99), n: s.ownLatencies.length },
    leases: s.latencies.length,
    ticks: s.ticks.map((t) => Math.round(t)),
    errors: s.errors,
    errorKinds: s.errorKinds,
  };
}

function topStatements(meter) {
  return Object.entries(meter.d1.byStatement)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
}

function f1(x) {
  return x === null || x === undefined ? "-" : x >= 100 ? x.toFixed(0) : x.toFixed(1);
}
function printRow(r, header) {
  if (header) {
    console.log(
      "\n| step | agents | starts/s offered→done | Worker req/s | busiest Dispatcher req/s (all) | busiest Execution req/s (all) | busiest Agent req/s (all) | D1 stmt/s (writes; index) | queue msg/s | dispatch p50 / p99 ms: shared pool; account queues | cron tick ms | errors |",
    );
    console.log("| --- | ---: | --- | ---: | --- | --- | --- | --- | ---: | --- | --- | ---: |");
  }
  console.log(
    `| ${r.step} | ${r.agents} | ${f1(r.offered)} → ${f1(r.started)} / fin ${f1(r.finished)} | ${f1(r.httpRps)} | ${f1(r.dispatcher.rps)} \`${r.dispatcher.name}\` (${f1(r.dispatcher.total)}) | ${f1(r.execution.rps)} (${f1(r.execution.total)}) | ${f1(r.agent.rps)} (${f1(r.agent.total)}) | ${f1(r.d1.rps)} (${f1(r.d1.writes)}; ${f1(r.d1.indexWrites)}) | ${f1(r.queue)} | ${f1(r.shared.p50)} / ${f1(r.shared.p99)} (n=${r.shared.n}); ${f1(r.own.p50)} / ${f1(r.own.p99)} (n=${r.own.n}) | ${r.ticks.join(", ") || "-"} | ${r.errors}${r.errors ? ` ${JSON.stringify(r.errorKinds)}` : ""} |`,
  );
}

function findBend(results) {
  const first = results[0];
  for (const r of results.slice(1)) {
    const why = [];
    if (r.errors > 0) why.push(`${r.errors} errors`);
    if (r.p99 !== null && first.p99 !== null && r.p99 > Math.max(3 * first.p99, 1_000))
      why.push(`dispatch p99 ${f1(r.p99)} ms vs ${f1(first.p99)} ms at step 1`);
    if (r.shared.p50 !== null && r.own.p50 !== null && r.shared.p50 > Math.max(3 * r.own.p50, 500)) {
      why.push(
        `the shared pool waits ${f1(r.shared.p50)} ms at p50 against ${f1(r.own.p50)} ms on the accounts' queues (one Dispatcher, grants one at a time)`,
      );
    }
    if (r.started < 0.9 * r.offered) why.push(`starts answered ${f1(r.started)}/s of ${f1(r.offered)}/s offered`);
    const perStart = (x) => x.httpRps / Math.max(0.1, x.offered);
    if (r.finished < 0.75 * r.started) why.push(`finishing ${f1(r.finished)}/s of ${f1(r.started)}/s started (agents or the Worker saturated)`);
    if (why.length)
      return `The curve bends at step ${r.step} (${r.agents} agents, ${f1(r.offered)} starts/s, ${f1(r.httpRps)} Worker req/s): ${why.join("; ")}. Per start, ${f1(perStart(r))} Worker requests.`;
  }
  const last = results.at(-1);
  return `No bend within these steps: up to ${last.agents} agents, ${f1(last.offered)} starts/s, ${f1(last.httpRps)} Worker req/s, dispatch p99 ${f1(last.p99)} ms.`;
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const key = a.slice(2).replace(/-(\w)/g, (_, c) => c.toUpperCase());
    const v = argv[i + 1] && !argv[i + 1].startsWith("--") ? argv[++i] : "true";
    if (key === "var") out.var = [...(out.var ?? []), v];
    else out[key] = v;
  }
  return out;
}
function int(v, d) {
  const n = Number.parseInt(v ?? "", 10);
  return Number.isFinite(n) ? n : d;
}
function num(v, d) {
  const n = Number(v);
  return v !== undefined && Number.isFinite(n) ? n : d;
}
