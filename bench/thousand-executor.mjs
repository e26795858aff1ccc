// Issue 16, item 5 without the API: the agent's executor (in-process sink, sandbox with a slot
// user when the machine can) over the thousand-host job, beside bare ansible-playbook, interleaved.
// Tells the agent's share of `npm run bench -- thousand`'s overhead from the local API's.
//
//   node bench/thousand-executor.mjs [rounds]   (Node >= 22.18: imports the agent's TypeScript)
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Run } from "../agent/src/run.ts";
import { defaultUidBase, probeIsolation } from "../agent/src/sandbox.ts";

const ROUNDS = Number(process.argv[2] ?? 1);
const FORKS = 50;
const PLAYBOOK =
  "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: one\n      ansible.builtin.debug:\n        msg: one\n    - name: two\n      ansible.builtin.set_fact:\n        two: 2\n    - name: three\n      ansible.builtin.assert:\n        that: two == 2\n        quiet: true\n";
const HOST_VARS = { ansible_host: "127.0.0.1", ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" };
const ids = Array.from({ length: 1000 }, (_, i) => `h${String(i + 1).padStart(4, "0")}`);
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];

const work = mkdtempSync(join(tmpdir(), "rnr-thousand-"));
chmodSync(work, 0o711);
writeFileSync(join(work, "pb.yml"), PLAYBOOK);
writeFileSync(join(work, "inv.json"), JSON.stringify({ all: { hosts: Object.fromEntries(ids.map((id) => [id, HOST_VARS])) } }));
const support = probeIsolation(work);
const uid = defaultUidBase(work);
const isolation = support.sandbox.ok && support.uid.ok ? { level: "sandbox", uid, gid: uid } : { level: "none" };

function bare() {
  const t = performance.now();
  const r = spawnSync("ansible-playbook", ["-i", join(work, "inv.json"), "-f", String(FORKS), join(work, "pb.yml")], { stdio: "ignore" });
  if (r.status !== 0) throw new Error(`ansible-playbook exited ${r.status}`);
  return performance.now() - t;
}

async function agent(i) {
  let events = 0;
  const sink = { event: () => void events++, report: async () => {}, flush: async () => {} };
  const lease = {
    executionId: `thousand-${i}`,
    attempt: 1,
    job: {
      playbook: Buffer.from(PLAYBOOK).toString("base64"),
      hosts: ids.map((id) => ({ id, hostVars: HOST_VARS })),
      properties: {},
      playbookTags: [],
      forks: FORKS,
    },
    secrets: [],
  };
  const cpu0 = process.cpuUsage();
  const t = performance.now();
  const r = await new Run(lease, sink, { workRoot: work, receivedAt: t, isolation }).run();
  if (r.status !== "SUCCESS") throw new Error(`agent run ended ${r.status}: ${r.detail}`);
  const c = process.cpuUsage(cpu0);
  return { ms: performance.now() - t, events, cpu: (c.user + c.system) / 1e6 };
}

console.log(`thousand hosts, forks ${FORKS}: executor (${isolation.level}) vs bare, ${ROUNDS} round(s), interleaved`);
try {
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 ? ["agent", "bare"] : ["bare", "agent"];
    for (const which of order) {
      const l = load();
      if (which === "bare") console.log(`bare     ${(bare() / 1000).toFixed(1)} s (load ${l} → ${load()})`);
      else {
        const a = await agent(i);
        console.log(`executor ${(a.ms / 1000).toFixed(1)} s (load ${l} → ${load()}), ${a.events} events, agent CPU ${a.cpu.toFixed(1)} s`);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
