// What the local runtime (workerd under `wrangler dev`) keeps per request for each kind of work a
// Runner request asks of it: nothing, a console line, a 2 KB console line, a D1 read, a Durable
// Object RPC. One tiny Worker per kind (bench/runtime-memory/<kind>/), each under its own
// `wrangler dev` on loopback, N requests 16 at a time after 500 to warm up; RSS of its workerd
// processes from /proc, 3 s before and 5 s after. Prints KiB per request; asserts nothing.
//   node bench/runtime-memory.mjs [plain log log-2kb d1 do]   (N=6000 by default; N=… to change)
import { execSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWranglerDev } from "../scripts/lib/wrangler-dev.mjs";

const N = Number(process.env.N || 6000);
const KINDS = ["plain", "log", "log-2kb", "d1", "do"];
const which = process.argv.slice(2).length ? process.argv.slice(2) : KINDS;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function workerdOf(pgid) {
  const rows = execSync("ps -eo pid=,pgid=,comm=").toString().trim().split("\n");
  return rows
    .map((l) => l.trim().split(/\s+/))
    .filter(([, g, c]) => Number(g) === pgid && c.includes("workerd"))
    .map(([p]) => Number(p));
}
const rssMiB = (pids) => pids.reduce((s, p) => s + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? 0), 0) / 1024;

async function send(url, n) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < n) await (await fetch(`${url}/x`)).arrayBuffer();
    }),
  );
}

for (const kind of which) {
  if (!KINDS.includes(kind)) throw new Error(`unknown kind ${kind}; one of ${KINDS.join(", ")}`);
  const state = mkdtempSync(join(tmpdir(), "runner-runtime-memory-"));
  const dev = await startWranglerDev({ cwd: join(import.meta.dirname, "runtime-memory", kind), persistTo: state });
  try {
    await send(dev.url, 500);
    await sleep(3000);
    const pids = workerdOf(dev.child.pid);
    const before = rssMiB(pids);
    const t0 = Date.now();
    await send(dev.url, N);
    await sleep(5000);
    const after = rssMiB(pids);
    console.log(
      `${kind}: ${before.toFixed(0)} → ${after.toFixed(0)} MiB over ${N} requests: ${(((after - before) * 1024) / N).toFixed(1)} KiB/request (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
  } finally {
    await dev.stop();
    rmSync(state, { recursive: true, force: true });
  }
}
