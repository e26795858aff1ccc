// What the agent adds to a playbook run: time from lease to ansible-playbook start, and its total
// overhead over a bare `ansible-playbook` run of the same playbook and inventory.
//
//   node bench/agent-overhead.mjs [runs]        (Node >= 22.18: imports the agent's TypeScript)
//
// Both sides run the same real playbook over real SSH (the test sshd on 127.0.0.1, pipelining
// on) or with connection local. The agent side is the executor with an in-process sink: workspace,
// key and inventory files, the callback plugin, event parsing and redaction, process sweep,
// workspace removal. Network time to the API is not included. The agent side runs without
// isolation and in the sandbox with a slot user (when the machine can: root and bubblewrap), so
// the sandbox's own cost shows beside the rest.
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { childEnv } from "../agent/src/ansible-env.ts";
import { Run } from "../agent/src/run.ts";
import { defaultUidBase, probeIsolation } from "../agent/src/sandbox.ts";
import { startSshd } from "../test/fixtures/sshd.ts";

const RUNS = Number(process.argv[2] ?? 3);
const b64 = (s) => Buffer.from(s).toString("base64");

/** Ends the ssh ControlPersist masters whose sockets live in `cpDir` (the agent does the same after each run). */
function endMasters(cpDir) {
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      if (readFileSync(`/proc/${n}/cmdline`, "utf8").includes(cpDir)) process.kill(Number(n), "SIGTERM");
    } catch {
      /* gone */
    }
  }
}

function bare(dir, inventory, playbook) {
  writeFileSync(join(dir, "inventory.json"), JSON.stringify(inventory));
  writeFileSync(join(dir, "playbook.yml"), playbook);
  // A fresh ControlPath directory per run, as the agent's workspace has: no warm ssh master from
  // the run before (that would flatter the bare side by a connection set-up per host).
  const cpDir = mkdtempSync(join(dir, "cp-"));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn("ansible-playbook", ["-i", join(dir, "inventory.json"), join(dir, "playbook.yml")], {
      cwd: dir,
      stdio: ["ignore", "ignore", "ignore"],
      env: {
        ...childEnv(),
        ANSIBLE_HOST_KEY_CHECKING: "False",
        ANSIBLE_SSH_ARGS: "-C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR",
        ANSIBLE_SSH_CONTROL_PATH_DIR: cpDir,
        ANSIBLE_RETRY_FILES_ENABLED: "0",
      },
    });
    c.on("error", reject);
    c.on("exit", (code) => {
      const ms = performance.now() - t0;
      endMasters(cpDir);
      return code === 0 ? resolve(ms) : reject(new Error(`ansible-playbook exited ${code}`));
    });
  });
}

async function agent(workRoot, lease, level) {
  let events = 0;
  const sink = { event: () => void events++, report: async () => {}, flush: async () => {} };
  const uid = defaultUidBase(workRoot);
  const isolation = level === "none" ? { level } : { level, uid, gid: uid };
  const t0 = performance.now();
  const r = await new Run(lease, sink, { workRoot, receivedAt: t0, isolation }).run();
  if (r.status !== "SUCCESS") throw new Error(`agent run ended ${r.status}: ${r.detail}`);
  return { total: performance.now() - t0, toSpawn: r.timings.leaseToSpawnMs, toStart: r.timings.leaseToStartMs, events };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const f = (ms) => `${ms.toFixed(0).padStart(6)} ms`;

const sshd = await startSshd();
const work = mkdtempSync(join(tmpdir(), "rnr-bench-"));
chmodSync(work, 0o711); // slot users pass through to their workspaces
const support = probeIsolation(work);
// uid alone costs nothing measurable over none (a setuid at spawn); the sandbox is what to watch.
const levels = ["none", ...(support.sandbox.ok && support.uid.ok ? ["sandbox"] : [])];
try {
  const tasks = (n, body) => Array.from({ length: n }, (_, i) => `    - name: task ${i + 1}\n${body}`).join("");
  const cases = [
    {
      name: "ssh, 1 host, 2 tasks",
      hosts: ["web1"],
      playbook: `- hosts: all\n  gather_facts: false\n  tasks:\n${tasks(2, "      ansible.builtin.command: echo hi\n      changed_when: false\n")}`,
    },
    {
      name: "ssh, 3 hosts, 5 tasks",
      hosts: ["web1", "web2", "web3"],
      playbook: `- hosts: all\n  gather_facts: false\n  tasks:\n${tasks(5, "      ansible.builtin.command: echo hi\n      changed_when: false\n")}`,
    },
    {
      name: "local, 1 host, 200 debug tasks (event volume)",
      hosts: ["localhost"],
      local: true,
      playbook: `- hosts: all\n  gather_facts: false\n  tasks:\n${tasks(200, "      ansible.builtin.debug:\n        msg: a line of output\n")}`,
    },
  ];
  console.log(`agent overhead over bare ansible-playbook, ${RUNS} runs each (median; ansible-core, sshd on 127.0.0.1)\n`);
  for (const c of cases) {
    const hostVars = c.local ? { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } : sshd.hostVars();
    const keyFile = join(work, "key.pem");
    writeFileSync(keyFile, sshd.clientKey.pem, { mode: 0o600 });
    const inventory = { all: { hosts: Object.fromEntries(c.hosts.map((h) => [h, { ...hostVars, ansible_ssh_private_key_file: keyFile }])) } };
    const lease = (i) => ({
      executionId: `bench-${i}`,
      attempt: 1,
      job: {
        playbook: b64(c.playbook),
        sshPrivateKey: sshd.clientKey.base64,
        hosts: c.hosts.map((id) => ({ id, hostVars })),
        properties: {},
        playbookTags: [],
      },
      secrets: [sshd.clientKey.base64],
    });
    // One warm-up each (page cache, ssh), not counted.
    const bareDir = mkdtempSync(join(work, "bare-"));
    await bare(bareDir, inventory, c.playbook);
    for (const level of levels) await agent(work, lease(0), level);
    const bares = [];
    const agents = Object.fromEntries(levels.map((l) => [l, []]));
    // Interleaved, so that a slower stretch of the machine weighs on every side alike.
    for (let i = 1; i <= RUNS; i++) {
      bares.push(await bare(bareDir, inventory, c.playbook));
      for (const level of levels) agents[level].push(await agent(work, lease(i), level));
    }
    const b = median(bares);
    console.log(c.name);
    console.log(`  bare ansible-playbook                 ${f(b)}`);
    for (const level of levels) {
      const runs = agents[level];
      const a = median(runs.map((x) => x.total));
      console.log(
        `  agent (${level.padEnd(7)}) lease → done     ${f(a)}   overhead ${f(a - b)} (${(((a - b) / b) * 100).toFixed(1)} %, ${(a / b).toFixed(2)}x)`,
      );
      console.log(`  agent (${level.padEnd(7)}) lease → spawn    ${f(median(runs.map((x) => x.toSpawn)))}`);
      console.log(`  agent (${level.padEnd(7)}) lease → started  ${f(median(runs.map((x) => x.toStart)))}   (mostly ansible-playbook's own start-up)`);
    }
    console.log(`  events per run                        ${String(agents.none[0].events).padStart(6)}\n`);
  }
} finally {
  await sshd.stop();
  rmSync(work, { recursive: true, force: true });
}
