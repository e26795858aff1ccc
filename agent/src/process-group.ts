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

/** A process's state letter (Z: zombie) and process group, from /proc/<pid>/stat; null if gone. */
function statOf(pid: number): { state: string; pgid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // The command name is in parentheses and may itself contain spaces or parentheses.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 3);
    return { state: rest[0] ?? "?", pgid: Number(rest[2]) };
  } catch {
    return null;
  }
}

interface Proc {
  pid: number;
  state: string;
  /** Real uid. */
  uid: number;
  pgid: number;
}

/** A process's state letter, real uid and process group, from /proc/<pid>/status; null if gone. */
function statusOf(pid: number): Proc | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return null;
  }
  const uid = /^Uid:\s+(\d+)/m.exec(s);
  if (!uid) return null;
  // NSpgid's first field is the group as our /proc sees it (Linux >= 4.1; stat says it otherwise).
  const pgid = /^NSpgid:\s+(\d+)/m.exec(s);
  return {
    pid,
    state: /^State:\s+(\S)/m.exec(s)?.[1] ?? "?",
    uid: Number(uid[1]),
    pgid: pgid ? Number(pgid[1]) : (statOf(pid)?.pgid ?? -1),
  };
}

/** Every process but zombies, as /proc shows them now. */
function liveProcs(): Proc[] {
  const out: Proc[] = [];
  for (const pid of pids()) {
    const p = statusOf(pid);
    if (p && p.state !== "Z") out.push(p);
  }
  return out;
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
    if (found && (statOf(pid)?.state ?? "Z") !== "Z") out.push(pid);
  }
  return out;
}

/** Live processes running as `uid` (real uid). */
function uidMembers(uid: number): number[] {
  return liveProcs()
    .filter((p) => p.uid === uid)
    .map((p) => p.pid);
}

/**
 * Kills every process tracked with `value`: SIGTERM first (ssh masters close their connections),
 * SIGKILL for whatever is still there after `graceMs`. Returns how many were found. `found`: the
 * first look, when the caller has just made it.
 */
export async function killTracked(value: string, graceMs = 1000, found = findTracked({ value })): Promise<number> {
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

export interface RunProcesses {
  /** The process groups the run's processes lead (ansible-playbook's, git's). */
  groups: number[];
  /** SIGKILL the groups at once (a kill); otherwise SIGTERM, and `graceMs` for them to end. */
  kill: boolean;
  trackingId: string;
  /** The run's slot user, when it has one of its own: none of its processes may be left. */
  uid?: number;
  graceMs: number;
}

/**
 * Ends whatever is left of a run, in order: its process groups (SIGTERM; SIGKILL for what is
 * still there after `graceMs`), its tracked processes (killTracked: ssh masters, daemons), and
 * with `uid` every process of its slot user (killByUid: what cleared its environment or left its
 * session). Returns how many of the last two there were. After nearly every run nothing is left
 * once the groups are gone: the pass over /proc that sees them gone also answers the other two.
 */
export async function endRun(o: RunProcesses): Promise<{ tracked: number; byUid: number }> {
  const uid = o.uid && hasProc ? o.uid : undefined; // never every root process
  const groups = o.groups.filter((g) => signalGroup(g, o.kill ? "SIGKILL" : "SIGTERM"));
  let seen: Proc[] | null = null;
  if (groups.length && !o.kill) {
    const until = Date.now() + o.graceMs;
    // Right after a run the groups' last members are usually exiting already (a sandbox's init
    // takes its namespace down within a millisecond or two): look at once, then again soon (1 ms,
    // doubling to 50), so that the run's end is not held up by a fixed poll.
    for (let wait = 1; ; wait = Math.min(50, wait * 2)) {
      seen = hasProc ? liveProcs() : null;
      if (!(seen ? seen.some((p) => groups.includes(p.pgid)) : groups.some(isAlive))) break;
      if (Date.now() >= until) {
        for (const g of groups) signalGroup(g, "SIGKILL");
        seen = null;
        break;
      }
      await sleep(wait);
    }
  }
  if (!hasProc) return { tracked: 0, byUid: 0 };
  if (!seen && uid !== undefined) seen = liveProcs();
  const tracked = seen ? seen.filter((p) => trackingIdOf(p.pid) === o.trackingId).map((p) => p.pid) : findTracked({ value: o.trackingId });
  const trackedCount = tracked.length ? await killTracked(o.trackingId, o.graceMs, tracked) : 0;
  // After a kill of tracked processes the first look is out of date: killByUid looks again.
  const first = seen && !trackedCount ? seen.filter((p) => p.uid === uid).map((p) => p.pid) : undefined;
  const byUid = uid === undefined ? 0 : await killByUid(uid, first);
  return { tracked: trackedCount, byUid };
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

/**
 * Kills every process running as `uid` (a slot user: nothing but one run's processes are ever
 * that user, so after the run none may be left, whatever it did to its environment or session).
 * Returns how many were found. `found`: the first look, when the caller has just made it.
 */
export async function killByUid(uid: number, found?: number[]): Promise<number> {
  if (!hasProc || uid === 0) return 0;
  found ??= uidMembers(uid);
  const count = found.length;
  // No grace: they had theirs with the run's own process group; SIGKILL until none is left
  // (one may fork between the scan and the kill).
  for (let i = 0; found.length && i < 50; i++) {
    for (const pid of found) signalProcess(pid, "SIGKILL");
    await sleep(20);
    found = uidMembers(uid);
  }
  return count;
}
