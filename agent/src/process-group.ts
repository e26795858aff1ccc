// Child processes that lead their own process group, and the sweep that makes sure none of an
// execution's processes outlive it.
//
// Every process of an execution carries RUNNER_AGENT_TRACKING_ID in its environment (children
// inherit it, even ssh ControlPersist masters that daemonise into their own session), so after a
// run the agent finds and kills whatever is left, the way the GitHub Actions runner does with
// RUNNER_TRACKING_ID. The value starts with the agent's pid and a tag of its work directory
// ("<pid>:<tag>:…"), so that an agent restarted after a crash can tell its dead predecessor's
// leftovers from a live agent's, and from those of another agent installation on the machine.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { sleep } from "./retry.ts";

export const TRACKING_ENV = "RUNNER_AGENT_TRACKING_ID";

/** A short tag naming a work directory, for tracking ids. */
export function workRootTag(workRoot: string): string {
  return createHash("sha256").update(resolve(workRoot)).digest("hex").slice(0, 8);
}

/** The tracking id of one run: `<agent pid>:<work root tag>:<unique part>`. */
export function trackingId(workRoot: string, unique: string): string {
  return `${process.pid}:${workRootTag(workRoot)}:${unique}`;
}

/** Spawns `cmd` as the leader of a new process group (and session). */
export function spawnGroup(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  return spawn(cmd, args, { ...opts, detached: true });
}

/** Sends `signal` to the whole group led by `pid`; false if the group is gone. */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pid) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function signalProcess(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
  cmdline: string;
}

const hasProc = (() => {
  try {
    readdirSync("/proc/self");
    return true;
  } catch {
    return false;
  }
})();

function pids(): number[] {
  if (!hasProc) return [];
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((p) => p !== process.pid);
}

export function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may itself contain spaces or parentheses.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0+$/, "").replace(/\0/g, " ");
    return { pid, state: rest[0] ?? "?", ppid: Number(rest[1]), pgid: Number(rest[2]), cmdline };
  } catch {
    return null;
  }
}

/** The tracking id in a process's environment, or null (untracked, gone, or not ours to read). */
function trackingIdOf(pid: number): string | null {
  let env: string;
  try {
    env = readFileSync(`/proc/${pid}/environ`, "latin1");
  } catch {
    return null;
  }
  const kv = env.split("\0").find((x) => x.startsWith(TRACKING_ENV + "="));
  return kv ? kv.slice(TRACKING_ENV.length + 1) : null;
}

/** Live processes (zombies excluded) whose environment contains `NAME=value` exactly, or starting with `prefix` when given. */
export function findTracked(match: { value?: string; prefix?: string }): number[] {
  const out: number[] = [];
  for (const pid of pids()) {
    const v = trackingIdOf(pid);
    if (v === null) continue;
    const found = match.value !== undefined ? v === match.value : match.prefix !== undefined && v.startsWith(match.prefix);
    if (!found) continue;
    const info = procInfo(pid);
    if (info && info.state !== "Z") out.push(pid);
  }
  return out;
}

/** Members of process group `pgid` that are still running (not zombies). */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const pid of pids()) {
    const info = procInfo(pid);
    if (info && info.pgid === pgid && info.state !== "Z") out.push(pid);
  }
  return out;
}

/**
 * Kills every process tracked with `value`: SIGTERM first (ssh masters close their connections),
 * SIGKILL for whatever is still there after `graceMs`. Returns how many were found.
 */
export async function killTracked(value: string, graceMs = 1000): Promise<number> {
  let found = findTracked({ value });
  const count = found.length;
  if (!count) return 0;
  for (const pid of found) signalProcess(pid, "SIGTERM");
  const until = Date.now() + graceMs;
  for (let wait = 5; found.length && Date.now() < until; wait = Math.min(50, wait * 2)) {
    await sleep(wait);
    found = findTracked({ value });
  }
  for (const pid of found) signalProcess(pid, "SIGKILL");
  // A killed process disappears (or turns zombie) almost at once; wait a little so callers see it gone.
  for (let i = 0; i < 20 && findTracked({ value }).length; i++) await sleep(25);
  return count;
}

/** SIGTERM to a group, then SIGKILL after `graceMs` if any member remains. */
export async function terminateGroup(pgid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pgid, "SIGTERM")) return;
  const until = Date.now() + graceMs;
  // Right after a run the group's last members are usually exiting already: look again soon
  // (5 ms, doubling to 50), so that the run's end is not held up by a fixed poll.
  for (let wait = 5; Date.now() < until; wait = Math.min(50, wait * 2)) {
    if (hasProc ? !groupMembers(pgid).length : !isAlive(pgid)) return;
    await sleep(wait);
  }
  signalGroup(pgid, "SIGKILL");
}

/**
 * Processes tracked by an agent of this work directory that is no longer running (it crashed or
 * was SIGKILLed): their tracking id starts with the dead agent's pid and this work root's tag.
 * Killed at start by the next agent.
 */
export async function killOrphans(workRoot: string): Promise<number> {
  const tag = workRootTag(workRoot);
  const orphans: number[] = [];
  for (const pid of pids()) {
    const v = trackingIdOf(pid);
    if (v === null) continue;
    const [ownerText, ownerTag] = v.split(":");
    const owner = Number(ownerText);
    if (ownerTag === tag && owner > 0 && owner !== process.pid && !isAlive(owner)) orphans.push(pid);
  }
  for (const pid of orphans) signalProcess(pid, "SIGKILL");
  return orphans.length;
}

/** The real uid of a process, or null. */
function uidOf(pid: number): number | null {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Kills every process running as `uid` (a slot user: nothing but one run's processes are ever
 * that user, so after the run none may be left, whatever it did to its environment or session).
 * Returns how many were found.
 */
export async function killByUid(uid: number): Promise<number> {
  if (!hasProc || uid === 0) return 0;
  const find = () => pids().filter((p) => uidOf(p) === uid && procInfo(p)?.state !== "Z");
  let found = find();
  const count = found.length;
  // No grace: they had theirs with the run's own process group; SIGKILL until none is left
  // (one may fork between the scan and the kill).
  for (let i = 0; found.length && i < 50; i++) {
    for (const pid of found) signalProcess(pid, "SIGKILL");
    await sleep(20);
    found = find();
  }
  return count;
}
