// `npm run soak -- --minutes N`: the real stack under the faults operators cause, for N minutes.
//
// Continuous starts of short and long jobs; random stops and kills; the agent SIGKILLed and
// restarted every minute; the API restarted every three minutes; the network between the agent and
// the API cut for 60 s once. Then everything is left to settle and it prints: executions started,
// each final status, events with gaps or duplicates (must be 0), executions left non-terminal
// (must be 0), leftover processes (must be 0), 5xx answers (must be 0), and workerd's memory at
// the start and the end. Exits 1 when one of the must-be-zero figures is not. Not part of npm test.
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { workRootTag } from "../agent/src/process-group.ts";
import { defaultUidBase } from "../agent/src/sandbox.ts";
import { listProcesses } from "../test/fixtures/processes.ts";
import { startProxy } from "../test/fixtures/proxy.ts";
import { b64, isTerminal, sleep, Stack } from "../test/e2e/stack.ts";

const { values } = parseArgs({ options: { minutes: { type: "string", default: "10" }, seed: { type: "string", default: "1" } } });
const minutes = Number(values.minutes);
if (!(minutes > 0 && minutes <= 240)) {
  console.error("soak: --minutes must be a number from 1 to 240");
  process.exit(2);
}
// A small seeded generator: a run can be repeated.
let seed = Number(values.seed) >>> 0 || 1;
const random = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32;

const A = "soak";
const LOCAL = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
const play = (tasks) => b64(`- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}`);
const SHORT = play("    - name: one\n      ansible.builtin.debug:\n        msg: soak\n    - name: two\n      ansible.builtin.command: echo two\n");
const LONG = play(Array.from({ length: 6 }, (_, i) => `    - name: step ${i + 1}\n      ansible.builtin.shell: sleep 4; echo step-${i + 1}\n`).join(""));
const log = (m) => console.log(`soak ${new Date().toISOString().slice(11, 19)} ${m}`);

/** Processes of this stack's runs still alive: tracked with its work directory's tag, or running as a slot user. */
function leftoverProcesses(workDir) {
  const tag = `:${workRootTag(workDir)}:`;
  const base = defaultUidBase(workDir);
  return listProcesses().filter((p) => {
    try {
      if (
        readFileSync(`/proc/${p.pid}/environ`, "latin1")
          .split("\0")
          .some((kv) => kv.startsWith("RUNNER_AGENT_TRACKING_ID=") && kv.includes(tag))
      )
        return true;
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"))?.[1]);
      return uid >= base && uid < base + 4;
    } catch {
      return false;
    }
  });
}

/** RSS of the workerd processes serving this stack (their command line names its state dir). */
function workerdMiB(dir) {
  let kib = 0;
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const cmd = readFileSync(`/proc/${n}/cmdline`, "utf8");
      if (!cmd.includes("workerd")) continue;
      const parent = readFileSync(`/proc/${readFileSync(`/proc/${n}/stat`, "utf8").split(") ")[1].split(" ")[1]}/cmdline`, "utf8");
      if (!cmd.includes(dir) && !parent.includes(dir)) continue;
      kib += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${n}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      /* gone */
    }
  }
  return kib / 1024;
}

const stack = await new Stack().start({ agent: false });
const proxy = await startProxy(stack.api.port);
let failures = 0;
try {
  const token = await stack.token([A]);
  let fiveXX = 0;
  const call = async (method, path, body) => {
    const r = await stack.call(method, path, token, body).catch(() => ({ status: 0, json: null, text: "" }));
    if (r.status >= 500) {
      fiveXX++;
      log(`5xx: ${method} ${path} → ${r.status} ${r.text.slice(0, 200)}`);
    }
    return r;
  };
  await stack.registerAgent(stack.agentConfig, "soak-agent");
  // The agent reaches the API through the proxy, so that the network between them can be cut.
  const startAgent = () => stack.startAgent(stack.agentConfig, ["--url", proxy.url]);
  startAgent();
  const jobs = {};
  for (const [name, playbook] of [
    ["short", SHORT],
    ["long", LONG],
  ]) {
    const r = await call("POST", `/jobs/${A}`, { name, playbook, hosts: LOCAL });
    jobs[name] = r.json.id;
  }
  const memStart = workerdMiB(stack.dir);
  const started = [];
  const until = Date.now() + minutes * 60_000;
  let nextAgentKill = Date.now() + 60_000;
  let nextApiRestart = Date.now() + 180_000;
  let cutAt = Date.now() + Math.min(90_000, (minutes * 60_000) / 3);
  log(`running for ${minutes} min (workerd ${memStart.toFixed(0)} MiB)`);
  while (Date.now() < until) {
    const kind = random() < 0.7 ? "short" : "long";
    const r = await call("POST", `/jobs/${A}/${jobs[kind]}/start`, {});
    if (r.status === 200) started.push({ jobId: jobs[kind], id: r.json.execution_id });
    // A running one stopped or killed now and then.
    if (started.length > 3 && random() < 0.15) {
      const victim = started[Math.floor(random() * started.length)];
      const action = random() < 0.5 ? "stop" : "kill";
      await call("POST", `/jobs/${A}/${victim.jobId}/executions/${victim.id}/${action}`, action === "stop" ? { expiryDuration: 10 } : {});
    }
    if (Date.now() >= nextAgentKill) {
      log("SIGKILL the agent, then start it again");
      stack.killAgentHard();
      await sleep(1000);
      startAgent();
      nextAgentKill = Date.now() + 60_000;
    }
    if (Date.now() >= nextApiRestart) {
      log("restart the API");
      await stack.restartApi();
      nextApiRestart = Date.now() + 180_000;
    }
    if (cutAt && Date.now() >= cutAt) {
      log("cut the network between the agent and the API for 60 s");
      proxy.cut();
      setTimeout(() => (proxy.restore(), log("network restored")), 60_000);
      cutAt = 0;
    }
    await sleep(1500 + random() * 1500);
  }
  proxy.restore();
  log(`started ${started.length}; waiting for every execution to end`);
  const settleUntil = Date.now() + 10 * 60_000;
  const finals = new Map();
  while (Date.now() < settleUntil && finals.size < started.length) {
    for (const e of started) {
      if (finals.has(e.id)) continue;
      const r = await call("GET", `/jobs/${A}/${e.jobId}/executions/${e.id}`);
      if (r.status === 200 && isTerminal(r.json)) finals.set(e.id, r.json);
    }
    if (finals.size < started.length) await sleep(3000);
  }
  const byStatus = {};
  for (const f of finals.values())
    byStatus[`${f.status}${f.reason ? ` (${f.reason})` : ""}`] = (byStatus[`${f.status}${f.reason ? ` (${f.reason})` : ""}`] ?? 0) + 1;
  let gaps = 0;
  for (const e of started) {
    const seqs = [];
    for (let page = 0; ; page++) {
      const r = await call("GET", `/jobs/${A}/${e.jobId}/executions/${e.id}/events?page=${page}&size=100`);
      if (r.status !== 200) break;
      seqs.push(...r.json.results.map((x) => x.sequence));
      if (r.json.results.length < 100) break;
    }
    if (seqs.some((s, i) => s !== i + 1)) gaps++;
  }
  const nonTerminal = started.length - finals.size;
  await stack.stopAgent();
  const leftovers = leftoverProcesses(join(stack.dir, "work-agent")).length;
  const memEnd = workerdMiB(stack.dir);
  console.log("\nsoak results");
  console.log(`  minutes                         ${minutes}`);
  console.log(`  executions started              ${started.length}`);
  for (const [k, v] of Object.entries(byStatus).sort()) console.log(`    ${k.padEnd(30)}${v}`);
  console.log(`  with event gaps or duplicates   ${gaps}   (must be 0)`);
  console.log(`  left non-terminal               ${nonTerminal}   (must be 0)`);
  console.log(`  leftover processes              ${leftovers}   (must be 0)`);
  console.log(`  5xx answers                     ${fiveXX}   (must be 0)`);
  console.log(`  workerd memory                  ${memStart.toFixed(0)} MiB → ${memEnd.toFixed(0)} MiB`);
  failures = gaps + nonTerminal + leftovers + fiveXX;
} finally {
  await proxy.stop();
  await stack.stop();
}
process.exit(failures ? 1 : 0);
