// `npm start` stopped with Ctrl-C while a job runs: the agent is asked to stop, the run gets a
// short grace, then the agent kills it and reports it KILLED before everything exits. Nothing is
// left running, and the execution does not end agent_lost on the next start.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
// @ts-expect-error plain ESM helpers shared with npm start
import { freePort, killGroup, startWranglerDev } from "../../scripts/lib/wrangler-dev.mjs";
import { processesMatching, processesWithEnv, waitUntilGone } from "../fixtures/processes";
import { b64, sleep } from "./stack";

const ROOT = join(import.meta.dirname, "..", "..");
const state = mkdtempSync(join(tmpdir(), "rnr-start-"));
chmodSync(state, 0o711); // the agent's slot users pass through to their workspaces under it
let start: ChildProcess | null = null;
let api: { stop(): Promise<void> } | null = null;

afterAll(async () => {
  if (start) killGroup(start, "SIGKILL");
  // npm start's own children (wrangler dev, the agent) lead groups of their own: a start.mjs that
  // died mid-test leaves them, and they name this test's state directory on their command line.
  const named = processesMatching(new RegExp(state.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  // The agent gets its state directory by environment only.
  for (const p of [...named, ...processesWithEnv("RUNNER_STATE_DIR", state)]) {
    try {
      process.kill(-p.pgid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  await api?.stop();
  for (const p of processesMatching(/sleep 117\.5/)) process.kill(p.pid, "SIGKILL");
  rmSync(state, { recursive: true, force: true });
});

async function call(url: string, method: string, path: string, token: string, body?: unknown) {
  const r = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: (await r.json().catch(() => null)) as any };
}

describe("npm start", () => {
  it("Ctrl-C while a job runs: the run is killed and reported KILLED, nothing is left running", async () => {
    const port = await freePort();
    start = spawn(process.execPath, ["scripts/start.mjs"], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(port), RUNNER_DEV_STATE: join(state, "dev"), RUNNER_STATE_DIR: join(state, "agent") },
      detached: true, // its own process group, as a terminal's foreground job
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    start.stdout!.on("data", (d) => (out += d));
    start.stderr!.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => start!.once("exit", (code) => r(code)));
    for (let i = 0; i < 600 && !/agent started/.test(out); i++) await sleep(200);
    expect(out).toMatch(/Runner is up/);
    const token = /Token: +(\S+)/.exec(out)![1]!;
    const alias = /account "([^"]+)"/.exec(out)![1]!;
    const url = `http://127.0.0.1:${port}`;

    const playbook = "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: long\n      ansible.builtin.command: sleep 117.5\n";
    const local = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
    const created = await call(url, "POST", `/jobs/${alias}?immediate=true`, token, { name: "ctrl-c", playbook: b64(playbook), hosts: local });
    expect(created.status).toBe(200);
    const path = `/jobs/${alias}/${created.json.id}/executions/${created.json.execution.execution_id}`;
    for (let i = 0; i < 300 && (await call(url, "GET", path, token)).json?.status !== "RUNNING"; i++) await sleep(200);
    for (let i = 0; i < 300 && !processesMatching(/^sleep 117\.5/).length; i++) await sleep(100);
    expect(processesMatching(/^sleep 117\.5/)).toHaveLength(1);

    process.kill(-start.pid!, "SIGINT"); // what a terminal's Ctrl-C does
    await exited;
    start = null;
    expect(out).toContain("killing the executions still running");
    expect(await waitUntilGone(() => processesMatching(/sleep 117\.5/), 5000)).toEqual([]);

    // The next start finds it KILLED (reported by the agent before it exited), not agent_lost.
    api = await startWranglerDev({ port, persistTo: join(state, "dev"), cwd: ROOT });
    const after = await call(url, "GET", path, token);
    expect(after.json).toMatchObject({ status: "KILLED" });
    expect(after.json.reason).not.toBe("agent_lost");
  }, 240_000);
});
