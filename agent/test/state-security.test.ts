// Each agent keeps to its own: a state directory per registration, one agent process per work
// directory, and the list of what it holds (for the next process to report after a crash).
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";
import { agentIdOf, claimWorkDir, defaultStateDir, HeldStore } from "../src/state.ts";

const dir = mkdtempSync(join(tmpdir(), "rnr-state-"));
chmodSync(dir, 0o711);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the agent's state", () => {
  it("is a directory per agent id", () => {
    expect(agentIdOf("rac_0f06de9c-a6d9-427d_s3cret")).toBe("0f06de9c-a6d9-427d");
    expect(agentIdOf("not a credential")).toBeNull();
    const a = defaultStateDir("agent-a", { XDG_STATE_HOME: "/xdg" });
    const b = defaultStateDir("agent-b", { XDG_STATE_HOME: "/xdg" });
    expect(a).not.toBe(b);
    expect(a).toMatch(/agent-a$/);
  });

  it("lets one live agent process use a work directory; a dead one's claim lapses", async () => {
    const work = join(dir, "work-claim");
    const other = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      writeFileSync(join(dir, "placeholder"), "");
      expect(await claimWorkDir(work, "agent-a")).toBeNull();
      // Another live process claims it: we are refused, with who holds it.
      writeFileSync(join(work, ".agent"), JSON.stringify({ agentId: "agent-b", pid: other.pid }));
      expect(await claimWorkDir(work, "agent-a")).toBe(`agent agent-b (pid ${other.pid})`);
    } finally {
      other.kill("SIGKILL");
      await new Promise((r) => other.once("exit", r));
    }
    expect(await claimWorkDir(work, "agent-a")).toBeNull();
    expect(JSON.parse(readFileSync(join(work, ".agent"), "utf8"))).toEqual({ agentId: "agent-a", pid: process.pid });
  });

  it("run refuses a work directory another agent is using (exit 2, naming it)", async () => {
    const work = join(dir, "work-busy");
    const other = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      await claimWorkDir(work, "x");
      writeFileSync(join(work, ".agent"), JSON.stringify({ agentId: "agent-b", pid: other.pid }));
      const file = join(dir, "busy.json");
      writeFileSync(file, JSON.stringify({ url: "http://127.0.0.1:9", agentId: "agent-a", credential: "rac_agent-a_x" }), { mode: 0o600 });
      const chunks: string[] = [];
      const io = { out: (t: string) => void chunks.push(t), err: (t: string) => void chunks.push(t), env: { RUNNER_CONFIG: file } };
      expect(await main(["run", "--work-dir", work, "--state-dir", join(dir, "st-a")], io)).toBe(2);
      expect(chunks.join("")).toContain(`is in use by agent agent-b (pid ${other.pid})`);
    } finally {
      other.kill("SIGKILL");
    }
  });

  it("writes what it holds through to a 0600 file, and reads back what a dead process left", async () => {
    const state = join(dir, "held");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(state);
    const a = new HeldStore(state);
    await a.add({ executionId: "e1", attempt: 1, leaseId: "l1" });
    await a.add({ executionId: "e2", attempt: 2, leaseId: "l2" });
    await a.remove("e1");
    expect(statSync(join(state, "held.json")).mode & 0o777).toBe(0o600);
    expect(await new HeldStore(state).previous()).toEqual([{ executionId: "e2", attempt: 2, leaseId: "l2" }]);
    writeFileSync(join(state, "held.json"), "not json");
    expect(await new HeldStore(state).previous()).toEqual([]);
  });
});
