import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isTerminal, sleep } from "../../test/e2e/stack.ts";
import { A, agentMarks, b64, call, median, pct, processes, record, stack, token, warm } from "../lib/common.mjs";

// Issue 16, item 5: one execution over 1,000 inventory hosts (aliases of 127.0.0.1, connection
// local), forks 50, three tasks. The tasks run no module on the host (debug, set_fact and assert
// are action plugins, run in the forked worker): with `command` a run took 12.5 min on this
// 2-core machine, nearly all of it 1,000 Python module processes, which is Ansible's cost, the
// same under every runner; without it a run takes ~2.5 min and what is measured is the controller,
// the events (~7,000) and what carries them.
const HOSTS = 1000;
const FORKS = 50;
const PLAYBOOK = `- hosts: all
  gather_facts: false
  tasks:
    - name: one
      ansible.builtin.debug:
        msg: one
    - name: two
      ansible.builtin.set_fact:
        two: 2
    - name: three
      ansible.builtin.assert:
        that: two == 2
        quiet: true
`;
const HOST_VARS = { ansible_host: "127.0.0.1", ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" };
const ids = Array.from({ length: HOSTS }, (_, i) => `h${String(i + 1).padStart(4, "0")}`);
const WANT = { ok: 3, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 };
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];

/** CPU seconds of a process from /proc: its own (user + system) and its waited-for children's. */
function cpu(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14-17 (utime, stime, cutime, cstime) are at 11-14 once pid and comm are cut; clock ticks of 1/100 s.
    return { own: (Number(f[11]) + Number(f[12])) / 100, children: (Number(f[13]) + Number(f[14])) / 100 };
  } catch {
    return { own: 0, children: 0 };
  }
}

/** CPU seconds of every workerd under this process (the API under test). */
function workerdCpu() {
  const all = processes();
  const parent = new Map(all.map((p) => [p.pid, p.ppid]));
  const ours = (pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) if (p === process.pid) return true;
    return false;
  };
  return all.filter((p) => p.name === "workerd" && ours(p.pid)).reduce((sum, p) => sum + cpu(p.pid).own, 0);
}

export async function thousand() {
  const rounds = Number(process.env.BENCH_THOUSAND_ROUNDS ?? 1);
  // BENCH_THOUSAND_ONLY=runner (comma-separated: bare, ansibleRunner, runner) runs only those.
  const only = process.env.BENCH_THOUSAND_ONLY?.split(",");
  const dir = mkdtempSync(join(tmpdir(), "runner-thousand-"));
  const inventory = JSON.stringify({ all: { hosts: Object.fromEntries(ids.map((id) => [id, HOST_VARS])) } });
  writeFileSync(join(dir, "pb.yml"), PLAYBOOK);
  writeFileSync(join(dir, "inv.json"), inventory);
  const cpuOf = {};
  const time = (cmd, args) => {
    const c = cpu(process.pid).children;
    const t = performance.now();
    const r = spawnSync(cmd, args, { stdio: "ignore", maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}`);
    cpuOf[cmd] = cpu(process.pid).children - c;
    return performance.now() - t;
  };
  const bare = () => time("ansible-playbook", ["-i", join(dir, "inv.json"), "-f", String(FORKS), join(dir, "pb.yml")]);
  const runnerCli = (i) => {
    const pd = join(dir, `ar-${i}`);
    mkdirSync(join(pd, "project"), { recursive: true });
    mkdirSync(join(pd, "inventory"), { recursive: true });
    writeFileSync(join(pd, "project", "pb.yml"), PLAYBOOK);
    writeFileSync(join(pd, "inventory", "hosts.json"), inventory);
    try {
      return time("ansible-runner", ["run", pd, "-p", "pb.yml", "--forks", String(FORKS)]);
    } finally {
      rmSync(pd, { recursive: true, force: true });
    }
  };
  const create = await call("POST", `/jobs/${A}`, {
    name: "thousand",
    playbook: b64(PLAYBOOK),
    hosts: ids.map((id) => ({ id, hostVars: HOST_VARS })),
    forks: FORKS,
  });
  if (create.status !== 200) throw new Error(`create job: ${create.status} ${create.text.slice(0, 300)}`);
  const jobId = create.json.id;

  const figures = { bare: [], ansibleRunner: [], runner: [] };
  const notes = [];
  let last;
  for (let round = 0; round < rounds; round++) {
    // Interleaved, the order turning each round: the machine's load drifts (other work shares it).
    const steps = [
      ["bare", () => bare()],
      ["ansibleRunner", () => runnerCli(round)],
      ["runner", async () => (last = await runnerRun(jobId)).ms],
    ];
    for (let k = 0; k < steps.length; k++) {
      const [name, fn] = steps[(k + round) % steps.length];
      if (only && !only.includes(name)) continue;
      const before = load();
      process.stderr.write(`bench: thousand round ${round + 1}/${rounds}: ${name} (load ${before})…\n`);
      try {
        const ms = await fn();
        figures[name].push(ms);
        const used = name === "bare" ? cpuOf["ansible-playbook"] : name === "ansibleRunner" ? cpuOf["ansible-runner"] : null;
        notes.push(`${name} ${(ms / 1000).toFixed(1)} s (load ${before} → ${load()}${used === null ? "" : `, CPU ${used.toFixed(1)} s`})`);
        process.stderr.write(`bench: thousand: ${notes.at(-1)}${name === "runner" ? ` ${JSON.stringify(last)}` : ""}\n`);
      } catch (e) {
        const why = `${e.message ?? e}${e.cause ? ` (${e.cause.code ?? e.cause.message ?? e.cause})` : ""}`;
        process.stderr.write(
          `bench: thousand: ${name} failed: ${why}\nagent:\n${stack.agentOutput.slice(-3000)}\nwrangler:\n${stack.api.output().slice(-3000)}\n`,
        );
        notes.push(`${name} failed: ${why.slice(0, 150)}`);
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
  if (!figures.runner.length) throw new Error(notes.join("; "));
  const s = (xs) => median(xs) / 1000;
  record("thousand", "bare ansible-playbook (1,000 hosts, forks 50, 3 tasks) p50", s(figures.bare), "s", notes.filter((n) => n.startsWith("bare")).join("; "));
  record(
    "thousand",
    "ansible-runner p50",
    figures.ansibleRunner.length ? s(figures.ansibleRunner) : "n/a",
    "s",
    notes.filter((n) => n.startsWith("ansible")).join("; "),
  );
  record("thousand", "Runner (start → log ends → final status read) p50", s(figures.runner), "s", notes.filter((n) => n.startsWith("runner")).join("; "));
  if (figures.bare.length) record("thousand", "Runner / bare", median(figures.runner) / median(figures.bare), "x", "target ≤ 1.10");
  if (figures.ansibleRunner.length) record("thousand", "Runner / ansible-runner", median(figures.runner) / median(figures.ansibleRunner), "x", "target < 1");
  record("thousand", "hosts with the right stats (last run)", last.rightHosts, "hosts", `of ${HOSTS}; want ${JSON.stringify(WANT)}; status ${last.status}`);
  record(
    "thousand",
    "agent peak RSS during the run (last run)",
    last.peakRss,
    "MiB",
    `sampled every 100 ms; VmHWM (lifetime) ${last.hwm.toFixed(0)} MiB; target ≤ 200`,
  );
  record("thousand", "events stored (last run)", last.events, "events");
  record(
    "thousand",
    "CPU of the last Runner run besides ansible-playbook: agent / API (workerd)",
    `${last.cpu.agent} / ${last.cpu.workerd}`,
    "s",
    `bare ansible-playbook: ${cpuOf["ansible-playbook"]?.toFixed(1) ?? "n/a"} s; 2 cores shared`,
  );
  record(
    "thousand",
    "log follow: lag behind each event, p50 / p99 / max",
    `${last.lag.p50} / ${last.lag.p99} / ${last.lag.max}`,
    "ms",
    `${last.lag.n} SSE messages, ${last.reconnects} reconnects; event's timestamp (ansible emitted it) → seen by the follower`,
  );
  record("thousand", "log follow: process exited → follower saw the end", last.tailLag, "ms", "the agent's 'exited' hop → SSE stream closed");
}

/** One Runner execution of the job: wall time as a user sees it, the stats, the agent's memory and the follower's lag. */
async function runnerRun(jobId) {
  const pid = stack.agentPid();
  const status = () => readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status())?.[1] ?? NaN) / 1024;
  let peakRss = kib("VmRSS");
  const poll = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, kib("VmRSS"));
    } catch {
      /* the agent is gone: the run will say so */
    }
  }, 100);
  // The keep-alive socket left idle by the minutes-long peer runs may be closed by now: not timed.
  await warm();
  const cpu0 = { agent: cpu(pid), workerd: workerdCpu() };
  const t = performance.now();
  try {
    const r = await call("POST", `/jobs/${A}/${jobId}/start`, {});
    if (r.status !== 200) throw new Error(`start: ${r.status} ${r.text}`);
    const id = r.json.execution_id;
    const seen = await followSse(jobId, id);
    const final = await call("GET", `/jobs/${A}/${jobId}/executions/${id}`);
    const ms = performance.now() - t;
    clearInterval(poll);
    const cpu1 = { agent: cpu(pid), workerd: workerdCpu() };
    if (!isTerminal(final.json)) throw new Error(`not terminal after the log ended: ${final.text.slice(0, 300)}`);
    const stats = final.json.host_stats ?? {};
    const rightHosts = ids.filter((h) => JSON.stringify(stats[h]) === JSON.stringify(WANT)).length;
    // Each SSE message's id is the sequence of its last event: its lag is seen-at minus that event's timestamp.
    const stamps = await eventTimestamps(jobId, id);
    const lags = seen.messages.map(([seq, at]) => at - (stamps.get(seq) ?? at)).filter((x) => x >= 0);
    for (let i = 0; i < 40 && !agentMarks(id).exited; i++) await sleep(50);
    const exited = agentMarks(id).exited;
    return {
      ms,
      status: final.json.status,
      rightHosts,
      peakRss,
      hwm: kib("VmHWM"),
      events: stamps.size,
      lag: { n: lags.length, p50: Math.round(median(lags)), p99: Math.round(pct(lags, 99)), max: Math.round(Math.max(...lags)) },
      tailLag: exited ? seen.closedAt - exited : "n/a",
      reconnects: seen.reconnects,
      // Where the CPU went besides ansible-playbook (whose CPU, under bubblewrap, never reaches the agent's children's counters).
      cpu: {
        agent: +(cpu1.agent.own - cpu0.agent.own).toFixed(1),
        workerd: +(cpu1.workerd - cpu0.workerd).toFixed(1),
      },
    };
  } finally {
    clearInterval(poll);
  }
}

/**
 * Follows the log as Server-Sent Events until its `end` message: each message's id and when it
 * arrived. A cut stream is resumed with Last-Event-ID, as a browser's EventSource does (counted).
 */
async function followSse(jobId, executionId) {
  const dec = new TextDecoder();
  const messages = [];
  let lastId;
  let ended = false;
  let reconnects = 0;
  while (!ended) {
    try {
      const res = await fetch(`${stack.url}/jobs/${A}/${jobId}/executions/${executionId}/log?follow=true`, {
        headers: { authorization: `Bearer ${token}`, accept: "text/event-stream", ...(lastId ? { "last-event-id": lastId } : {}) },
      });
      let buf = "";
      for await (const chunk of res.body) {
        const at = Date.now();
        buf += dec.decode(chunk, { stream: true });
        for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
          const msg = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const m = /^id: (\d+)$/m.exec(msg);
          if (m) {
            lastId = m[1];
            messages.push([Number(m[1]), at]);
          }
          if (/^event: end$/m.test(msg)) ended = true;
        }
      }
      if (!ended && res.status !== 200) throw new Error(`log: ${res.status}`);
    } catch (e) {
      process.stderr.write(`bench: thousand: the log stream was cut (${e.cause?.code ?? e.message}); resuming after ${lastId}\n`);
    }
    if (!ended && ++reconnects > 20) throw new Error("the log stream kept failing");
  }
  return { messages, closedAt: Date.now(), reconnects };
}

async function eventTimestamps(jobId, executionId) {
  const out = new Map();
  for (let page = 0; ; page++) {
    const r = await call("GET", `/jobs/${A}/${jobId}/executions/${executionId}/events?page=${page}&size=100`);
    for (const e of r.json.results) out.set(e.sequence, e.timestamp);
    if (r.json.results.length < 100) return out;
  }
}
