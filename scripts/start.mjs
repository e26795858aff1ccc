// `npm start`: the whole of Runner on this machine. The API on wrangler dev (127.0.0.1:8787 or
// $PORT), one shared-pool agent registered against it, cron fired every minute, and a ready token.
// Ctrl-C stops every process it started. State persists in .wrangler/state (`npm run reset` clears it).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { buildUi } from "./build-ui.mjs";
import { ensureDevVars } from "./lib/dev-vars.mjs";
import { buildDownloads } from "./lib/downloads.mjs";
import { applyLocalMigrations, killGroup, startWranglerDev } from "./lib/wrangler-dev.mjs";

const port = Number(process.env.PORT ?? 8787);
// Where the state lives (D1, Durable Objects, the agent's registration); tests point it elsewhere.
const stateDir = process.env.RUNNER_DEV_STATE || ".wrangler/state";
const persistTo = process.env.RUNNER_DEV_STATE ? stateDir : undefined;
// The README's curl session and the dashboard's examples use account "acme": the banner's token is for it too.
const demo = process.env.RUNNER_DEMO_ACCOUNT ?? "acme";
const say = (m) => console.log(`runner: ${m}`);
const children = [];
let stopping = false;

async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  say("stopping…");
  for (const c of children.reverse()) await c.stop();
  process.exit(code);
}
process.on("SIGINT", () => shutdown(0));
process.on("SIGTERM", () => shutdown(0));

try {
  if (!existsSync("/usr/bin/ansible-playbook") && spawnSync("sh", ["-c", "command -v ansible-playbook"]).status !== 0) {
    say("warning: ansible-playbook is not on PATH; the agent cannot run playbooks (apt-get install ansible-core)");
  }
  await ensureDevVars();
  // The packed agent and CLI the API serves at /downloads/ (npm install -g <URL>/downloads/runner-agent.tgz).
  buildDownloads();
  await buildUi(); // the dashboard (/ui) and the API reference (/docs), served from public/
  say("applying local D1 migrations");
  applyLocalMigrations({ persistTo });
  say(`starting the API on http://127.0.0.1:${port}`);
  const api = await startWranglerDev({ port, persistTo });
  children.push(api);
  const url = api.url;

  // A token for the demo account, and an operator token to register the shared-pool agent.
  const token = (alias, role) => spawnSync(process.execPath, ["scripts/token.mjs", alias, "--role", role], { encoding: "utf8" }).stdout.trim();
  const userToken = token(demo, "admin");

  mkdirSync(stateDir, { recursive: true });
  const agentConfig = `${stateDir}/agent.json`;
  const agentBin = "agent/bin/runner-agent.mjs";
  // The agent's registration lives beside the state it belongs to: `npm run reset` clears both.
  if (!existsSync(agentConfig)) {
    // A shared-pool agent runs every account's playbooks, so it must run them as users of their
    // own in the sandbox, which needs root. Started as anyone else, the agent serves the demo
    // account only (sandboxed as this user where bubblewrap works).
    const root = process.getuid?.() === 0;
    // Tokens go by environment: a command line is readable by every process on the machine.
    const env = { ...process.env, RUNNER_CONFIG: agentConfig };
    let name = "local-shared";
    if (root) {
      say("registering a shared-pool agent");
      env.RUNNER_OPERATOR_TOKEN = token("*", "admin");
    } else {
      say(`registering an agent for account ${demo} (not root: a shared-pool agent needs root for its sandbox users)`);
      const r = await fetch(`${url}/minions/${demo}/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${userToken}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "local" }),
      });
      if (!r.ok) throw new Error(`could not create a registration token: ${r.status} ${await r.text()}`);
      name = "local";
      env.RUNNER_TOKEN = (await r.json()).token;
    }
    const reg = spawnSync(process.execPath, [agentBin, "register", "--url", url, "--name", name], { encoding: "utf8", env });
    if (reg.status !== 0) throw new Error(`agent registration failed:\n${reg.stdout}\n${reg.stderr}`);
  }
  // The config path by environment, never on the command line (where any process could read it).
  const agent = spawn(process.execPath, [agentBin, "run", "--url", url, "--concurrency", "4"], {
    env: { ...process.env, RUNNER_CONFIG: agentConfig },
    detached: true,
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push({
    async stop() {
      if (agent.exitCode !== null || agent.signalCode !== null) return;
      const exited = new Promise((r) => agent.once("exit", r));
      const within = (ms) => Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);
      // A first signal: no new work, executions not started yet go back to the queue, running ones
      // get a short grace to finish…
      killGroup(agent, "SIGTERM");
      if (await within(5000)) return;
      // …then a second: the agent kills them and reports them KILLED before it exits, so nothing is
      // left running and nothing ends agent_lost on the next start.
      say("killing the executions still running");
      killGroup(agent, "SIGTERM");
      if (await within(15_000)) return;
      killGroup(agent, "SIGKILL");
    },
  });
  agent.once("exit", (code) => !stopping && (say(`the agent exited (${code}); stopping`), shutdown(1)));
  api.child.once("exit", (code) => !stopping && (say(`wrangler dev exited (${code}); stopping`), shutdown(1)));

  // Cron Triggers don't fire by themselves under wrangler dev: fire the minute cron ourselves, a
  // second into each minute, so that the tick is surely past the slots due at that minute.
  const tick = () => fetch(`${url}/__scheduled?cron=${encodeURIComponent("* * * * *")}`).catch(() => {});
  const untilNextMinute = 60_000 - (Date.now() % 60_000) + 1_000;
  setTimeout(() => (tick(), setInterval(tick, 60_000)), untilNextMinute);

  const playbook = Buffer.from(
    "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: say hello\n      ansible.builtin.debug:\n        msg: Hello from Runner\n    - name: where am I\n      ansible.builtin.command: uname -a\n",
  ).toString("base64");
  const body = JSON.stringify({
    name: "hello",
    playbook,
    hosts: [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }],
  });
  console.log(`
Runner is up.

  Dashboard: ${url}/ui/   (sign in with the token below, or a service account's username and password)
  API:       ${url}          (docs: ${url}/docs)
  Token:     ${userToken}
             (account "${demo}", role admin; the same as: npm run --silent token -- ${demo})

Create and start a sample job against localhost:

  curl -s -X POST '${url}/jobs/${demo}?immediate=true' \\
    -H "Authorization: Bearer ${userToken}" -H 'Content-Type: application/json' \\
    -d '${body}'

Then follow its log live (plain text), or open the execution in the dashboard:

  curl -N -H "Authorization: Bearer <token>" '${url}/jobs/${demo}/<jobId>/executions/<executionId>/log?follow=true'

Ctrl-C stops everything.
`);
} catch (e) {
  console.error(`runner: ${e.message}`);
  await shutdown(1);
}
