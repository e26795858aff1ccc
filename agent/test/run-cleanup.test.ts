// The two ends of a run around ansible-playbook, as done for every run: the work root checked
// again before it (not trusted from the agent's start), and endRun after it: the run's process
// groups, its tracked processes and its slot user's processes ended from one call, nobody else's.
// Real processes, real uids (the tests run as root), checked in /proc.
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { listProcesses } from "../../test/fixtures/processes.ts";
import { endRun, TRACKING_ENV } from "../src/process-group.ts";
import { Run } from "../src/run.ts";
import { makeLease, MemorySink, workRoot } from "./helpers.ts";

const work = workRoot();
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  work.remove();
});

const root = typeof process.getuid === "function" && process.getuid() === 0;
// Far from the agent's slot uids (defaultUidBase) and from real users.
const SLOT = 1_190_000 + (process.pid % 1000) * 2;

function start(cmd: string, opts: { uid?: number; env?: NodeJS.ProcessEnv }): ChildProcess {
  const c = spawn("sh", ["-c", cmd], { detached: true, stdio: "ignore", env: { PATH: "/usr/bin:/bin", ...opts.env }, uid: opts.uid, gid: opts.uid });
  children.push(c);
  return c;
}
const exited = (c: ChildProcess) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once("exit", r)));
const live = () => new Set(listProcesses().map((p) => p.pid));

describe.skipIf(!root)("endRun", () => {
  it("ends the run's group, its tracked processes elsewhere and its slot user's untracked ones; leaves everyone else's", async () => {
    const id = `${process.pid}:test:${Date.now()}`;
    // The group's leader has exited (as ansible-playbook has when endRun runs); a member is left.
    const leader = start("sleep 60 & exit 0", { uid: SLOT, env: { [TRACKING_ENV]: id } });
    await exited(leader);
    const member = listProcesses().find((p) => p.pgid === leader.pid)!;
    expect(member).toBeTruthy();
    const tracked = start("exec sleep 61", { env: { [TRACKING_ENV]: id } }); // another session, the agent's uid
    const escaped = start("exec sleep 62", { uid: SLOT }); // no tracking id: only its uid tells
    const otherSlot = start("exec sleep 63", { uid: SLOT + 1, env: { [TRACKING_ENV]: `${id}-other` } });
    const otherRun = start("exec sleep 64", { env: { [TRACKING_ENV]: `${id}-other` } });

    const result = await endRun({ groups: [leader.pid!], kill: false, trackingId: id, uid: SLOT, graceMs: 1000 });

    expect(result).toEqual({ tracked: 1, byUid: 1 });
    const after = live();
    for (const pid of [member.pid, tracked.pid, escaped.pid]) expect(after.has(pid!)).toBe(false);
    for (const pid of [otherSlot.pid, otherRun.pid]) expect(after.has(pid!)).toBe(true);
    // The tracked one had its SIGTERM (ssh masters close their connections), the escaped one SIGKILL.
    await Promise.all([exited(tracked), exited(escaped)]);
    expect([tracked.signalCode, escaped.signalCode]).toEqual(["SIGTERM", "SIGKILL"]);
    otherSlot.kill("SIGKILL");
    otherRun.kill("SIGKILL");
  });

  it("SIGKILLs a group member that ignores SIGTERM once the grace is over, and at once on a kill", async () => {
    for (const kill of [false, true]) {
      // Only its group tells: the agent's own uid (isolation none), its tracking id cleared.
      const leader = start("trap '' TERM; sleep 60 & exit 0", {});
      await exited(leader);
      const member = listProcesses().find((p) => p.pgid === leader.pid)!;
      expect(member).toBeTruthy();
      await endRun({ groups: [leader.pid!], kill, trackingId: `${process.pid}:test:${kill}`, graceMs: 200 });
      expect(live().has(member.pid)).toBe(false);
    }
  });
});

describe("the work root", () => {
  // A lease that fails right after the workspace (its playbook is not base64): no ansible needed.
  const quick = () => makeLease({ playbook: "not base64!", hosts: [{ id: "h1", hostVars: {} }] });
  const run = (dir: string, uid?: number) =>
    new Run(quick(), new MemorySink(), { workRoot: dir, isolation: uid === undefined ? undefined : { level: "uid", uid, gid: uid } }).run();

  it("is checked again before every run: a mode widened meanwhile is narrowed back", async () => {
    const dir = join(work.dir, "root");
    expect((await run(dir)).reason).toBe("playbook_invalid");
    chmodSync(dir, 0o777);
    expect((await run(dir)).reason).toBe("playbook_invalid");
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
    if (root) {
      // A slot user passes through (0711), and may not list the others' workspaces.
      chmodSync(dir, 0o777);
      expect((await run(dir, SLOT)).reason).toBe("playbook_invalid");
      expect(lstatSync(dir).mode & 0o777).toBe(0o711);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a symlink planted in its place, and a directory of another user", async () => {
    const target = join(work.dir, "elsewhere");
    mkdirSync(target);
    const planted = join(work.dir, "planted");
    symlinkSync(target, planted);
    const r = await run(planted);
    expect([r.status, r.reason]).toEqual(["INIT_FAILURE", "workspace_failed"]);
    expect(r.detail).toMatch(/not a directory/);
    expect(readdirSync(target)).toEqual([]);
    if (root) {
      const theirs = join(work.dir, "theirs");
      mkdirSync(theirs, { mode: 0o700 });
      chownSync(theirs, SLOT, SLOT);
      const r2 = await run(theirs);
      expect([r2.status, r2.reason]).toEqual(["INIT_FAILURE", "workspace_failed"]);
      expect(r2.detail).toMatch(/belongs to uid/);
      expect(readdirSync(theirs)).toEqual([]);
    }
  });
});
