// How the agent copes with a flood of events while the API is slow: 100,000 callback records (and
// 100,000 lines of raw output) from a chatty playbook, the API answering each upload in 1 s for
// the first 8 s. Prints the time to deliver everything, the heartbeat gaps and the event-loop delay.
//
//   node bench/agent-event-flood.mjs [events]     (Node >= 22.18: imports the agent's TypeScript)
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Session } from "../agent/src/session.ts";
import { b64, makeLease, RecordingTransport } from "../agent/test/helpers.ts";

const N = Number(process.argv[2] ?? 100_000);
const SLOW_MS = 8000;
const dir = mkdtempSync(join(tmpdir(), "rnr-flood-"));
try {
  const wrapper = join(dir, "chatty-ansible-playbook");
  writeFileSync(
    wrapper,
    `#!/bin/sh
python3 -c '
import json, os
for i in range(${N}):
    os.write(3, (json.dumps({"event": "runner_on_ok", "ts": 0, "host": "h", "task": "t", "stdout": "line %d of the flood\\n" % i, "data": {"i": i}}) + "\\n").encode())
'
seq 1 ${N}
exec ansible-playbook "$@"
`,
  );
  chmodSync(wrapper, 0o755);
  for (const slow of [false, true]) {
    const t = new RecordingTransport();
    const store = t.events.bind(t);
    const t0 = Date.now();
    t.events = async (body) => {
      await new Promise((r) => setTimeout(r, slow && Date.now() - t0 < SLOW_MS ? 1000 : 0));
      return store(body);
    };
    const beats = [];
    const hb = t.heartbeat.bind(t);
    t.heartbeat = async (body) => {
      beats.push(Date.now());
      return hb(body);
    };
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const lease = makeLease(
      {
        playbook: b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: hi\n"),
        hosts: [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }],
      },
      { heartbeatIntervalMs: 1000 },
    );
    const r = await new Session(lease, { transport: t, executor: { workRoot: join(dir, "work"), ansiblePlaybook: wrapper } }).run();
    loop.disable();
    const gaps = beats.slice(1).map((b, i) => b - beats[i]);
    console.log(slow ? `API slow (1 s per upload) for the first ${SLOW_MS / 1000} s` : "API answering at once");
    console.log(`  status ${r.status}, ${t.stored.size} events stored, ${t.bodies.filter((b) => b.kind === "events").length} uploads`);
    console.log(`  lease → everything delivered   ${Date.now() - t0} ms`);
    console.log(`  heartbeat every 1000 ms: longest gap ${Math.max(...gaps)} ms`);
    console.log(
      `  event-loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(0)} ms, max ${(loop.max / 1e6).toFixed(0)} ms; rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB\n`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
