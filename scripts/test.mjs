// `npm test`: every suite, in order: worker (inside workerd), agent (real ansible/sshd/git), end-to-end.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const suites = [
  { name: "worker", args: ["vitest", "run", "--config", "vitest.config.ts"] },
  { name: "agent", config: "agent/vitest.config.ts", args: ["vitest", "run", "--config", "agent/vitest.config.ts"] },
  { name: "e2e", config: "test/e2e/vitest.config.ts", args: ["vitest", "run", "--config", "test/e2e/vitest.config.ts"] },
];
const extra = process.argv.slice(2);
let failed = [];
for (const s of suites) {
  if (s.config && !existsSync(s.config)) continue;
  console.log(`\n=== ${s.name} tests ===`);
  const r = spawnSync("npx", [...s.args, ...extra], { stdio: "inherit" });
  if (r.status !== 0) failed.push(s.name);
}
if (failed.length) {
  console.error(`\nfailed suites: ${failed.join(", ")}`);
  process.exit(1);
}
console.log("\nall suites passed");
