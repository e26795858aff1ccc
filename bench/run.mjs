// `npm run bench`: measures Runner on this machine and prints a table (medians over repeated
// runs), writing the figures to bench/results/latest.json. Nothing here asserts timings.
//   npm run bench                 # every section
//   npm run bench -- dispatch e2e # only these sections
//   npm run bench -- schedules    # the cron tick with 10 vs 10,010 schedules held
//   npm run bench -- webhooks     # deliveries/s of one execution's 1,000 events at DEBUG
//   npm run bench -- workerd      # workerd's memory growth: Runner against a trivial Worker
//   npm run bench -- thousand     # 1,000 hosts, forks 50 (~10 min: BENCH_THOUSAND_ROUNDS=n for n interleaved rounds)
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Stack } from "../test/e2e/stack.ts";
import { A, ROOT, record, results, rows, useStack } from "./lib/common.mjs";
import { schedules } from "./sections/schedules.mjs";
import { dispatch } from "./sections/dispatch.mjs";
import { e2e } from "./sections/e2e.mjs";
import { ingest } from "./sections/ingest.mjs";
import { webhooks } from "./sections/webhooks.mjs";
import { api } from "./sections/api.mjs";
import { fanout } from "./sections/fanout.mjs";
import { workerd } from "./sections/workerd.mjs";
import { memory } from "./sections/memory.mjs";
import { thousand } from "./sections/thousand.mjs";
import { loadavg } from "node:os";

const sections = { schedules, dispatch, e2e, ingest, webhooks, api, fanout, workerd, memory, thousand };

const wanted = process.argv.slice(2).filter((a) => sections[a]);
const order = wanted.length ? wanted : Object.keys(sections);
const stack = await new Stack().start();
useStack(stack, await stack.token([A]));
try {
  for (const name of order) {
    process.stderr.write(`bench: ${name}…\n`);
    // The machine's load beside every section's figures: on a shared machine it moves them most.
    const before = loadavg()[0];
    try {
      await sections[name]();
    } catch (e) {
      record(name, "error", String(e.message ?? e).slice(0, 200), "");
    }
    record(name, "load average (1 min) at start → end", `${before.toFixed(1)} → ${loadavg()[0].toFixed(1)}`, "");
  }
} finally {
  await stack.stop();
}
console.table(rows);
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/latest.json"), JSON.stringify({ ...results, rows }, null, 2));
console.log("written: bench/results/latest.json");
