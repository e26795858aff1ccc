// Isolation of an execution from the agent and from every other execution.
//
// Every job author controls what runs on the agent, so git and ansible-playbook run:
//   - sandbox: inside bubblewrap (new pid, ipc, uts and user namespaces; only the system read-only
//     and that execution's workspace directories; a private /tmp; --die-with-parent), and, when the
//     agent runs as root, as an unprivileged uid/gid of their own per concurrent slot. The agent's
//     files, processes (and /proc entries) and environment are not there at all.
//   - uid: as the slot's unprivileged uid/gid only (the agent must be root): file modes keep the
//     agent's config and other workspaces unreadable, and the agent's processes unsignalable.
//   - none: as the agent's own user (trusted playbooks only).
// Under every level a run dies with the agent: bwrap's --die-with-parent, and the lifeline of
// ansible-playbook (callback plugin) and git (git.ts) for uid and none.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { lstatSync, readFileSync, readlinkSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { workRootTag } from "./process-group.ts";

export type IsolationLevel = "sandbox" | "uid" | "none";

/** How one execution's processes are started: the level, and the slot's uid/gid when it has one. */
export interface Isolation {
  level: IsolationLevel;
  /** The slot's uid/gid (root agents); absent: the processes keep the agent's own. */
  uid?: number;
  gid?: number;
  /** Paths bound read-only over with nothing (the agent's config), in case a bound tree holds them. */
  hide?: string[];
}

export const NO_ISOLATION: Isolation = { level: "none" };

export const BWRAP = "bwrap";

/** Slots' uids: base + slot. The default base differs per work directory (agent installation). */
export function defaultUidBase(workRoot: string): number {
  return 1_200_000 + (parseInt(workRootTag(workRoot).slice(0, 4), 16) % 4096) * 256;
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** The directories a sandboxed process gets: rw ones are its own; ro ones (keys, plugin) too. */
export interface SandboxMounts {
  rw: string[];
  ro: string[];
  /** Files put in place of /etc/passwd and /etc/group (the slot's user exists for ssh and Python). */
  passwd?: string;
  group?: string;
}

// The system, read-only. Merged-/usr systems have these as symlinks, which are recreated as such.
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"];
// Where resolv.conf points on systemd-resolved machines.
const SYSTEM_TRY = ["/run/systemd/resolve"];

let systemArgsOnce: string[] | null = null;

/** The system's mounts; looked at once per agent process (its layout does not change under it). */
function systemArgs(): string[] {
  systemArgsOnce ??= lookAtSystem();
  return systemArgsOnce;
}

function lookAtSystem(): string[] {
  const args: string[] = [];
  for (const p of SYSTEM_DIRS) {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push("--symlink", readlinkSync(p), p);
    else if (st.isDirectory()) args.push("--ro-bind", p, p);
  }
  for (const p of SYSTEM_TRY) args.push("--ro-bind-try", p, p);
  return args;
}

/** bwrap's arguments (before the command) for a process with `iso` and `mounts`, started in `cwd`. */
export function bwrapArgs(iso: Isolation, mounts: SandboxMounts, cwd: string): string[] {
  const uid = iso.uid ?? process.getuid?.() ?? 0;
  const gid = iso.gid ?? process.getgid?.() ?? 0;
  const args = [
    "--unshare-user",
    "--uid",
    String(uid),
    "--gid",
    String(gid),
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--hostname",
    "runner",
    ...systemArgs(),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--tmpfs",
    "/var/tmp",
    "--tmpfs",
    "/dev/shm",
  ];
  if (mounts.passwd) args.push("--ro-bind", mounts.passwd, "/etc/passwd");
  if (mounts.group) args.push("--ro-bind", mounts.group, "/etc/group");
  for (const p of iso.hide ?? []) args.push("--ro-bind-try", "/dev/null", p);
  for (const p of mounts.rw) args.push("--bind", p, p);
  for (const p of mounts.ro) args.push("--ro-bind", p, p);
  args.push("--chdir", cwd);
  return args;
}

/** What an isolated process needs of its environment, and nothing of the agent's. */
const KEEP_ENV =
  /^(PATH|LANG|LANGUAGE|LC_[A-Z]+|TZ|TERM|ANSIBLE_[A-Z0-9_]+|(https?|no|all)_proxy|(HTTPS?|NO|ALL)_PROXY|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE)$/;

export function isolatedEnv(env: NodeJS.ProcessEnv, home: string, user = "runner"): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (KEEP_ENV.test(k) && v !== undefined) out[k] = v;
  out.HOME = home;
  out.USER = user;
  out.LOGNAME = user;
  out.PATH ||= "/usr/local/bin:/usr/bin:/bin";
  return out;
}

/** The /etc/passwd and /etc/group lines that make the slot's uid a user (ssh refuses an unnamed uid). */
export function passwdFiles(uid: number, gid: number, home: string): { passwd: string; group: string } {
  return {
    passwd: `root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nrunner:x:${uid}:${gid}:Runner execution:${home}:/bin/sh\n`,
    group: `root:x:0:\nnogroup:x:65534:\nrunner:x:${gid}:\n`,
  };
}

/**
 * Spawns `cmd` isolated as `iso` says, as the leader of a new process group. With the sandbox,
 * the child is bwrap: the command is its grandchild (see sandboxedCommandPid).
 */
export function spawnIsolated(iso: Isolation, mounts: SandboxMounts, cmd: string, args: string[], opts: SpawnOptions & { cwd: string }): ChildProcess {
  const ids = iso.uid !== undefined ? { uid: iso.uid, gid: iso.gid ?? iso.uid } : {};
  if (iso.level === "sandbox") {
    return spawn(BWRAP, [...bwrapArgs(iso, mounts, opts.cwd), "--", cmd, ...args], { ...opts, ...ids, detached: true });
  }
  if (iso.level === "uid") return spawn(cmd, args, { ...opts, ...ids, detached: true });
  return spawn(cmd, args, { ...opts, detached: true });
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * The command's pid outside the sandbox: bwrap (the spawned child) → the namespace's init →
 * the command. Null while it is not there yet, or is gone.
 */
export function sandboxedCommandPid(bwrapPid: number | undefined): number | null {
  if (!bwrapPid) return null;
  const init = childrenOf(bwrapPid)[0];
  if (!init) return null;
  return childrenOf(init)[0] ?? null;
}

export interface IsolationSupport {
  sandbox: { ok: boolean; why?: string };
  uid: { ok: boolean; why?: string };
  root: boolean;
}

/**
 * What this host supports, tried for real: bwrap runs a command in the namespaces (as an
 * unprivileged uid when the agent is root), and uids can be switched (root only).
 */
export function probeIsolation(workRoot: string): IsolationSupport {
  const root = isRoot();
  const uid: IsolationSupport["uid"] = root ? { ok: true } : { ok: false, why: "the agent does not run as root, so it cannot run executions as other users" };
  const probeUid = root ? defaultUidBase(workRoot) + 255 : undefined;
  const iso: Isolation = { level: "sandbox", uid: probeUid, gid: probeUid };
  let sandbox: IsolationSupport["sandbox"];
  const r = spawnSync(BWRAP, [...bwrapArgs(iso, { rw: [], ro: [] }, "/"), "--", "true"], {
    encoding: "utf8",
    timeout: 15_000,
    ...(probeUid !== undefined ? { uid: probeUid, gid: probeUid } : {}),
  });
  if (r.error) {
    sandbox = {
      ok: false,
      why:
        (r.error as NodeJS.ErrnoException).code === "ENOENT"
          ? "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
          : `bwrap could not be started: ${r.error.message}`,
    };
  } else if (r.status !== 0) {
    const msg = (r.stderr || r.stdout || "").trim().split("\n").slice(-2).join("; ");
    sandbox = {
      ok: false,
      why: `bwrap cannot create the sandbox here (${msg || `exit ${r.status}`}): user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)`,
    };
  } else sandbox = { ok: true };
  return { sandbox, uid, root };
}

/** Directories above `dir` that an unprivileged slot user could not pass through (bwrap needs to). */
export function untraversableAncestors(dir: string): string[] {
  const out: string[] = [];
  for (let d = dirname(resolve(dir)); ; d = dirname(d)) {
    try {
      const st = lstatSync(d);
      if ((st.mode & 0o001) === 0) out.push(d);
    } catch {
      out.push(d);
    }
    if (d === "/") break;
  }
  return out;
}

export type IsolationChoice = { ok: true; level: IsolationLevel; perSlotUid: boolean; warning?: string } | { ok: false; problem: string };

/**
 * The policy: a shared-pool agent runs other accounts' playbooks, so it needs the sandbox with a
 * user per slot; an account agent takes the sandbox where it can, falls back to uids with a
 * warning, and runs unisolated only when asked to.
 */
export function chooseIsolation(requested: IsolationLevel | undefined, support: IsolationSupport, shared: boolean): IsolationChoice {
  const perSlotUid = support.uid.ok;
  if (shared) {
    if (requested && requested !== "sandbox") {
      return { ok: false, problem: `a shared-pool agent runs other accounts' playbooks: it only runs with --isolation sandbox (got ${requested})` };
    }
    if (!support.sandbox.ok) return { ok: false, problem: `a shared-pool agent needs the sandbox, which this host cannot provide: ${support.sandbox.why}` };
    if (!perSlotUid) return { ok: false, problem: `a shared-pool agent needs a user per slot inside the sandbox: ${support.uid.why}` };
    return { ok: true, level: "sandbox", perSlotUid };
  }
  switch (requested) {
    case "sandbox":
      return support.sandbox.ok
        ? { ok: true, level: "sandbox", perSlotUid }
        : { ok: false, problem: `--isolation sandbox is not available: ${support.sandbox.why}` };
    case "uid":
      return support.uid.ok ? { ok: true, level: "uid", perSlotUid: true } : { ok: false, problem: `--isolation uid is not available: ${support.uid.why}` };
    case "none":
      return {
        ok: true,
        level: "none",
        perSlotUid: false,
        warning: "isolation none: playbooks run as the agent's own user and can read its credential; run only playbooks you trust",
      };
  }
  if (support.sandbox.ok) return { ok: true, level: "sandbox", perSlotUid };
  if (support.uid.ok) {
    return {
      ok: true,
      level: "uid",
      perSlotUid: true,
      warning: `the sandbox is not available (${support.sandbox.why}): executions run only as users of their own (--isolation uid)`,
    };
  }
  return {
    ok: false,
    problem:
      `no isolation is available: ${support.sandbox.why}; and ${support.uid.why}. ` +
      "Install bubblewrap, or run the agent as root, or accept the risk with --isolation none (playbooks could then read the agent's credential)",
  };
}

/**
 * uid isolation without the sandbox's own passwd file: ssh refuses to run as a uid that has no
 * passwd entry, so a root agent makes its slot users system users (once; `runner-<uid>`, no home,
 * no shell). Answers what it could not do.
 */
export function ensureSlotUsers(uidBase: number, count: number): string[] {
  const problems: string[] = [];
  for (let uid = uidBase; uid < uidBase + count; uid++) {
    const name = `runner-${uid}`;
    if (spawnSync("getent", ["group", String(uid)]).status !== 0) {
      const g = spawnSync("groupadd", ["--system", "--gid", String(uid), name], { encoding: "utf8" });
      if (g.status !== 0) problems.push(`groupadd ${name}: ${(g.stderr || g.error?.message || "").trim()}`);
    }
    if (spawnSync("getent", ["passwd", String(uid)]).status !== 0) {
      const u = spawnSync(
        "useradd",
        ["--system", "--uid", String(uid), "--gid", String(uid), "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
        {
          encoding: "utf8",
        },
      );
      if (u.status !== 0) problems.push(`useradd ${name}: ${(u.stderr || u.error?.message || "").trim()}`);
    }
  }
  return problems;
}

/** Removes the slot users ensureSlotUsers made (tests; an operator uninstalling). */
export function removeSlotUsers(uidBase: number, count: number): void {
  for (let uid = uidBase; uid < uidBase + count; uid++) {
    spawnSync("userdel", [`runner-${uid}`]);
    spawnSync("groupdel", [`runner-${uid}`]);
  }
}
