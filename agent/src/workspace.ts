// A private directory per execution, removed afterwards whatever happened.
//
//   <root>/x-<id>-<random>/   the agent's: 0700, or 0711 when the run has a slot user of its own
//     .owner                  pid of the agent that made it (a restarted agent sweeps dead owners' leftovers)
//     passwd, group           the slot user's /etc/passwd and /etc/group inside the sandbox
//     project/                the cloned repository, or the inline playbook
//     private/                0700: keys, inventory, extra vars, git credential helper (files 0600)
//     tmp/                    ANSIBLE_LOCAL_TEMP, TMPDIR
//     cp/                     ssh ControlPath sockets
//     home/                   HOME of an isolated run
// With a slot user, everything below the workspace directory belongs to that user and nothing
// else does: the run can neither change the agent's own files here nor read another run's.
import { chmod, chown, lchown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "./log.ts";
import { isAlive } from "./process-group.ts";

export interface Workspace {
  dir: string;
  project: string;
  private: string;
  tmp: string;
  cp: string;
  home: string;
  /** The slot user the run's processes are, when not the agent's own. */
  owner?: { uid: number; gid: number };
}

/**
 * Like Promise.all, but settles only when every step has: a failure leaves no write in flight
 * behind it (the workspace is removed next).
 */
export async function allDone(steps: Iterable<Promise<unknown> | null>): Promise<void> {
  const failed = (await Promise.allSettled(steps)).find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

export function defaultWorkRoot(): string {
  const uid = typeof process.getuid === "function" ? process.getuid() : "user";
  return join(tmpdir(), `runner-agent-${uid}`);
}

/**
 * Makes sure the work root exists, is a real directory (not a symlink someone planted in /tmp),
 * belongs to us and is private.
 */
export async function prepareWorkRoot(root: string, opts: { traversable?: boolean } = {}): Promise<void> {
  // Before every run: already as it should be (one lstat) is the usual answer.
  let st = await lstat(root).catch(() => null);
  if (!st) {
    await mkdir(root, { recursive: true, mode: 0o700 });
    st = await lstat(root);
  }
  if (!st.isDirectory()) throw new Error(`work directory ${root} is not a directory`);
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
    throw new Error(`work directory ${root} belongs to uid ${st.uid}, not to this user`);
  }
  // Slot users pass through to their own workspace (0711: they cannot list the others').
  const mode = opts.traversable ? 0o711 : 0o700;
  if ((st.mode & 0o777) !== mode) await chmod(root, mode);
}

export async function createWorkspace(root: string, executionId: string, owner?: { uid: number; gid: number }): Promise<Workspace> {
  const label = executionId.replace(/[^A-Za-z0-9]/g, "").slice(0, 8) || "run";
  // Short names keep ssh ControlPath sockets under the 108-byte limit of Unix socket paths.
  const dir = await mkdtemp(join(root, `x-${label}-`));
  const ws: Workspace = {
    dir,
    project: join(dir, "project"),
    private: join(dir, "private"),
    tmp: join(dir, "tmp"),
    cp: join(dir, "cp"),
    home: join(dir, "home"),
    owner,
  };
  // mkdtemp made it 0700: nothing in it is reachable by anyone else until the chmod. Independent
  // steps, side by side (each is a round trip to libuv's thread pool).
  await allDone([
    owner ? chmod(dir, 0o711) : null,
    writeFile(join(dir, ".owner"), String(process.pid), { mode: 0o600 }),
    ...[ws.project, ws.private, ws.tmp, ws.cp, ws.home].map(async (d) => {
      await mkdir(d, { mode: 0o700 });
      if (owner) await chown(d, owner.uid, owner.gid);
    }),
  ]);
  return ws;
}

/**
 * Gives the files the agent wrote for the run (keys, inventory, the inline playbook…) to its slot
 * user, so that it can read them and nobody else can. Called before any of the run's processes
 * starts; symlinks are never followed.
 */
export async function handOver(ws: Workspace, files: string[] = []): Promise<void> {
  if (!ws.owner) return;
  const { uid, gid } = ws.owner;
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    await allDone(
      entries.map(async (e) => {
        const p = join(dir, e.name);
        await lchown(p, uid, gid);
        if (e.isDirectory()) await walk(p);
      }),
    );
  };
  await allDone([walk(ws.private), ...files.map((f) => lchown(f, uid, gid))]);
}

export async function removeWorkspace(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // Something inside was made read-only (a module can do that): open it up and try again.
    await chmodTree(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

async function chmodTree(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => {});
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await chmodTree(p);
    else if (!e.isSymbolicLink()) await chmod(p, 0o600).catch(() => {});
  }
}

/** Writes a file only its owner can read (keys, passwords, variables). */
export async function writePrivateFile(path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(path, data, { mode: 0o600, flag: "wx" });
  await chmod(path, 0o600); // the umask may have narrowed it further; never wider
}

/** Removes workspaces left by agents that are no longer running (crash, SIGKILL). */
export async function sweepStaleWorkspaces(root: string, log: Logger): Promise<number> {
  let removed = 0;
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isDirectory() || !e.name.startsWith("x-")) continue;
    const dir = join(root, e.name);
    let stale = false;
    try {
      const pid = Number((await readFile(join(dir, ".owner"), "utf8")).trim());
      stale = !(pid > 0 && pid !== process.pid && isAlive(pid)) && pid !== process.pid;
    } catch {
      // No owner file: made and abandoned within a moment of a crash; leave very fresh ones alone.
      const st = await stat(dir).catch(() => null);
      stale = !!st && Date.now() - st.mtimeMs > 10 * 60_000;
    }
    if (stale) {
      await removeWorkspace(dir).catch((err) => log.warn("could not remove a stale workspace", { dir, error: err }));
      removed++;
    }
  }
  if (removed) log.info("removed workspaces left by an earlier agent", { count: removed });
  return removed;
}
