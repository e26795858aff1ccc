// What every bench section shares: the stack, the bench account, recording, and helpers.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { isTerminal, sleep } from "../../test/e2e/stack.ts";
import { importJWK, SignJWT } from "jose";

export const ROOT = join(import.meta.dirname, "../..");
export const A = "bench";
export const LOCAL = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
export const TWO_TASKS =
  "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: one\n      ansible.builtin.debug:\n        msg: one\n    - name: two\n      ansible.builtin.command: echo two\n";
export const b64 = (s) => Buffer.from(s).toString("base64");
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
export const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
export const rows = [];
export const results = {
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  at: new Date().toISOString(),
};
export const record = (section, metric, value, unit, note = "") => {
  rows.push({ section, metric, value: typeof value === "number" ? Number(value.toFixed(value < 10 ? 3 : 1)) : value, unit, note });
  (results[section] ??= {})[metric] = { value, unit, note };
};

export let stack, token;
/** Set once by run.mjs; sections read these live bindings. */
export function useStack(s, t) {
  stack = s;
  token = t;
}
export async function call(method, path, body) {
  return stack.call(method, path, token, body);
}
/**
 * A request that needs no answer, retried: after a section's minutes-long runs without a request,
 * the kept-alive socket may have been closed by the server, and the first request on it fails
 * (EPIPE). Sections call this before anything they time or must not send twice (a start).
 */
export async function warm() {
  for (let i = 0; i < 3; i++) {
    try {
      return await stack.call("GET", "/health", null);
    } catch {
      await sleep(100);
    }
  }
}
export async function createJob(body) {
  const r = await call("POST", `/jobs/${A}`, { name: "bench", hosts: LOCAL, ...body });
  if (r.status !== 200) throw new Error(`create job: ${r.status} ${r.text}`);
  return r.json.id;
}
export async function events(jobId, executionId) {
  const out = [];
  for (let page = 0; ; page++) {
    const r = await call("GET", `/jobs/${A}/${jobId}/executions/${executionId}/events?page=${page}&size=100`);
    out.push(...r.json.results);
    if (r.json.results.length < 100) return out;
  }
}

export let benchKey;
export async function signBenchToken(i) {
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
export function processes() {
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
 * This bench's workerd processes: those of each named `wrangler dev` (`{ name: its process group }`)
 * and Runner's (every other workerd descended from this process).
 */
export function workerdGroups(groups) {
  return () => {
    const all = processes();
    const parent = new Map(all.map((p) => [p.pid, p.ppid]));
    const ours = (pid) => {
      for (let p = pid, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) if (p === process.pid) return true;
      return false;
    };
    const workerd = all.filter((p) => p.name === "workerd" && ours(p.pid));
    const named = new Set(Object.values(groups));
    const out = { runner: workerd.filter((p) => !named.has(p.pgrp)).map((p) => p.pid) };
    for (const [name, pgrp] of Object.entries(groups)) out[name] = workerd.filter((p) => p.pgrp === pgrp).map((p) => p.pid);
    return out;
  };
}

/** CPU ms (user + system) used so far by this bench's descendants (wrangler dev's workerd and node), from /proc. */
export function serverCpuMs(only) {
  const all = processes();
  const parent = new Map(all.map((p) => [p.pid, p.ppid]));
  const ours = (pid) => {
    for (let p = parent.get(pid) ?? 0, hops = 0; p > 1 && hops < 64; p = parent.get(p) ?? 0, hops++) if (p === process.pid) return true;
    return false;
  };
  let ticks = 0;
  for (const p of all) {
    if (!ours(p.pid) || (p.name !== "workerd" && p.name !== "node") || (only && p.name !== only)) continue;
    try {
      const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]); // utime, stime
    } catch {
      /* gone meanwhile */
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

export const rssMiB = (pids) => pids.reduce((sum, pid) => sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0), 0) / 1024;

/** Seconds for `n` bare ansible-playbook runs of the two-task playbook, `parallel` at a time. */
export async function bareFanout(n, parallel) {
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

export async function countLogLines(jobId, executionId) {
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
export async function followToEnd(jobId, executionId, onChunk) {
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
export function agentMarks(executionId, output = stack.agentOutput) {
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
export async function hopsOf(jobId, executionId, client, output) {
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
    ["last events delivered or held for the final status", a.flushed],
    ["processes and workspace cleaned up", a.cleanedUp],
    ["final status stored", statusAt((s) => ["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"].includes(s))],
    ["agent has the final status's answer", a.reported],
    ["log stream closed", client.closed],
    ["final status read", client.finalRead],
  ];
}

/** Per hop: the median time from the start sent, and from the hop before (in the order listed). */
export function recordHops(section, runs) {
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

/** Events `from`..`to - 1` as a bench agent uploads them: one `runner_on_ok` each on localhost. */
export function okEvents(from, to, stdout, data) {
  const events = [];
  for (let seq = from; seq < to; seq++)
    events.push({ seq, timestamp: Date.now(), event_type: "runner_on_ok", host: "localhost", task: `task ${seq}`, play: "bench", stdout, data });
  return events;
}
