// Starts `wrangler dev` on 127.0.0.1 in its own process group and waits until /health answers.
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Applies the D1 migrations to the local database under `persistTo`. */
export function applyLocalMigrations({ cwd = process.cwd(), persistTo } = {}) {
  const args = ["wrangler", "d1", "migrations", "apply", "DB", "--local"];
  if (persistTo) args.push("--persist-to", persistTo);
  const r = spawnSync("npx", args, { cwd, encoding: "utf8", env: { ...process.env, CI: "true" } });
  if (r.status !== 0) throw new Error(`migrations failed:\n${r.stdout}\n${r.stderr}`);
}

/** Kills a whole process group: wrangler leaves workerd children behind otherwise. */
export function killGroup(child, signal = "SIGTERM") {
  // Signalled even after the leader exited: the group's other members (workerd) may outlive it.
  if (!child?.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

export async function waitForHealth(url, timeoutMs = 60_000, child) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child && child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not become healthy in ${timeoutMs} ms`);
}

/**
 * The Worker's own socket under `wrangler dev`, behind the dev proxy that serves `url` (a second
 * workerd that forwards every request, for live reload). For benchmarks that tell the proxy's
 * share of a round trip apart (bench/run.mjs with RUNNER_BENCH_DIRECT=1); Linux only (ss, ps).
 */
export async function directUrl(url) {
  const { execSync } = await import("node:child_process");
  const port = new URL(url).port;
  const listening = execSync("ss -ltnpH", { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.includes('"workerd"'));
  const pidOf = (l) => /pid=(\d+)/.exec(l)?.[1];
  const proxy = pidOf(listening.find((l) => l.includes(`:${port} `)) ?? "");
  if (!proxy) throw new Error(`no workerd listens on ${url}`);
  const parent = execSync(`ps -o ppid= -p ${proxy}`, { encoding: "utf8" }).trim();
  const siblings = execSync(`ps -o pid= --ppid ${parent}`, { encoding: "utf8" })
    .trim()
    .split(/\s+/)
    .filter((p) => p !== proxy);
  for (const l of listening.filter((l) => siblings.includes(pidOf(l)))) {
    const candidate = `http://127.0.0.1:${/127\.0\.0\.1:(\d+)/.exec(l)?.[1]}`;
    const r = await fetch(`${candidate}/health`).catch(() => null);
    if (r?.ok && (await r.json().catch(() => null))?.status === "ok") return candidate;
  }
  throw new Error(`no Worker socket found behind ${url}`);
}

/**
 * @param {{port?: number, persistTo?: string, cwd?: string, vars?: Record<string,string>, stdio?: any, envFile?: string}} opts
 */
export async function startWranglerDev(opts = {}) {
  // wrangler picks some of its own ports (its direct sockets) as free and binds them later; with
  // other stacks starting beside it one can be taken in between ("Address already in use"). A
  // busy machine is no reason to fail: start again, with fresh ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      if (attempt >= 3 || !/Address already in use|EADDRINUSE/.test(String(e?.message))) throw e;
    }
  }
}

async function startOnce(opts) {
  const port = opts.port ?? (await freePort());
  const args = [
    "wrangler",
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--test-scheduled",
    "--show-interactive-dev-session=false",
    "--log-level",
    "warn",
  ];
  if (opts.persistTo) args.push("--persist-to", opts.persistTo);
  if (opts.envFile) args.push("--env-file", opts.envFile);
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push("--var", `${k}:${v}`);
  const child = spawn("npx", args, {
    cwd: opts.cwd ?? process.cwd(),
    detached: true,
    stdio: opts.stdio ?? ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
  });
  const url = `http://127.0.0.1:${port}`;
  let output = "";
  child.stdout?.on("data", (d) => (output = (output + d).slice(-20_000)));
  child.stderr?.on("data", (d) => (output = (output + d).slice(-20_000)));
  try {
    await waitForHealth(url, 90_000, child);
  } catch (e) {
    killGroup(child, "SIGKILL");
    throw new Error(`${e.message}\n${output}`);
  }
  return {
    url,
    port,
    child,
    output: () => output,
    async stop() {
      killGroup(child, "SIGTERM");
      const exited = await Promise.race([new Promise((r) => child.once("exit", () => r(true))), new Promise((r) => setTimeout(() => r(false), 5000))]);
      if (!exited) killGroup(child, "SIGKILL");
      killGroup(child, "SIGKILL"); // workerd children linger otherwise
    },
  };
}
