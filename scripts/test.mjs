// `npm test`: every suite, in order: static (lint, type checks, import graph, protocol types),
// worker (inside workerd), agent (real ansible/sshd/git), end-to-end.
// Ends with one "N passed, N failed" line summed over the suites.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDownloads } from "./lib/downloads.mjs";
import { buildUi } from "./build-ui.mjs";

/** Static checks: each counts as one test of the "static" suite; any failure fails `npm test`. */
const checks = [
  // Lint and format (`npm run format` rewrites the tree; `npm run lint` lints only).
  { name: "biome check (lint and format)", cmd: ["biome", "check", "--error-on-warnings", "."] },
  { name: "tsc: worker and its tests", cmd: ["tsc", "-p", "tsconfig.json", "--noEmit"] },
  { name: "tsc: agent and its tests", cmd: ["tsc", "-p", "agent/tsconfig.json", "--noEmit"] },
  { name: "tsc: end-to-end tests", cmd: ["tsc", "-p", "test/e2e/tsconfig.json", "--noEmit"] },
  { name: "tsc: static tests", cmd: ["tsc", "-p", "test/static/tsconfig.json", "--noEmit"] },
  { name: "tsc: dashboard", cmd: ["tsc", "-p", "ui/tsconfig.json"] },
  { name: "tsc: runner CLI", cmd: ["tsc", "-p", "cli/tsconfig.json", "--noEmit"] },
];

const suites = [
  { name: "static", config: "test/static/vitest.config.ts", checks },
  { name: "worker", config: "vitest.config.ts" },
  { name: "agent", config: "agent/vitest.config.ts" },
  { name: "e2e", config: "test/e2e/vitest.config.ts" },
];
const extra = process.argv.slice(2);
// The end-to-end suite installs the agent and the CLI from the tarballs the API serves.
buildDownloads();
// The Worker serves the dashboard from public/ (built, not committed); the worker and e2e suites need it.
await buildUi();
const out = mkdtempSync(join(tmpdir(), "runner-test-"));
const failedSuites = [];
let passed = 0,
  failed = 0,
  skipped = 0;
for (const s of suites) {
  if (!existsSync(s.config)) continue;
  console.log(`\n=== ${s.name} tests ===`);
  let checksFailed = false;
  for (const c of s.checks ?? []) {
    console.log(`--- ${c.name}`);
    const r = spawnSync("npx", c.cmd, { stdio: "inherit" });
    if (r.status === 0) passed += 1;
    else {
      failed += 1;
      checksFailed = true;
      console.log(`✗ ${c.name} failed`);
    }
  }
  const json = join(out, `${s.name}.json`);
  const r = spawnSync("npx", ["vitest", "run", "--config", s.config, "--reporter=default", "--reporter=json", `--outputFile.json=${json}`, ...extra], {
    stdio: "inherit",
  });
  if (r.status !== 0 || checksFailed) failedSuites.push(s.name);
  try {
    const j = JSON.parse(readFileSync(json, "utf8"));
    passed += j.numPassedTests;
    failed += j.numFailedTests;
    skipped += j.numPendingTests + (j.numTodoTests ?? 0);
  } catch {
    failed += 1; // the suite did not even report
  }
}
rmSync(out, { recursive: true, force: true });
console.log(`\n${failedSuites.length ? `failed suites: ${failedSuites.join(", ")}` : "all suites passed"}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failedSuites.length ? 1 : 0);
