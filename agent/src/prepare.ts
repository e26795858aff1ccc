// Preparing a run's workspace before ansible-playbook starts: the sandbox's mounts, and the
// playbook: the inline one written out, or the repository cloned and its playbook path checked.
// A failure here is an InitFailure: the execution ends INIT_FAILURE with its reason.
import type { ChildProcess } from "node:child_process";
import { copyFile, mkdir, readdir, realpath, stat, writeFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type { HostKeyChecking } from "./ansible-env.ts";
import { CloneError, cloneRepository, type GitSpawn } from "./git.ts";
import { TRACKING_ENV } from "./process-group.ts";
import { passwdFiles, type Isolation, type SandboxMounts } from "./sandbox.ts";
import type { LeaseJob, RepositoryLog } from "./types.ts";
import { allDone, handOver, type Workspace } from "./workspace.ts";

/** Why the run could not start: `reason` is the INIT_FAILURE reason, the message its detail. */
export class InitFailure extends Error {
  readonly reason: string;
  constructor(reason: string, detail: string) {
    super(detail);
    this.reason = reason;
  }
}

/**
 * The sandbox's mounts: the run's own directories (its keys read-only), its passwd entry; and the
 * callback plugin's directory the run uses (a copy inside the workspace: the agent's install
 * directory may not be readable, or visible, to the run).
 */
export async function prepareIsolation(
  ws: Workspace,
  iso: Isolation,
  opts: { callbackDir: string; knownHosts?: string },
): Promise<{ mounts: SandboxMounts; callbackDir: string }> {
  if (iso.level === "none") return { mounts: { rw: [], ro: [] }, callbackDir: opts.callbackDir };
  const mounts: SandboxMounts = { rw: [ws.project, ws.tmp, ws.cp, ws.home], ro: [ws.private] };
  const own = join(ws.private, "callback_plugins");
  const writes: Promise<unknown>[] = [
    mkdir(own, { mode: 0o700 }).then(() => copyFile(join(opts.callbackDir, "runner_events.py"), join(own, "runner_events.py"))),
  ];
  if (opts.knownHosts) mounts.ro.push(opts.knownHosts);
  if (iso.level === "sandbox") {
    const uid = iso.uid ?? process.getuid?.() ?? 0;
    const files = passwdFiles(uid, iso.gid ?? uid, ws.home);
    mounts.passwd = join(ws.dir, "passwd");
    mounts.group = join(ws.dir, "group");
    writes.push(writeFile(mounts.passwd, files.passwd, { mode: 0o644 }), writeFile(mounts.group, files.group, { mode: 0o644 }));
  }
  // Side by side: each is a round trip to libuv's thread pool.
  await allDone(writes);
  return { mounts, callbackDir: own };
}

/** What preparing the playbook needs of the run. */
export interface PlaybookContext {
  job: LeaseJob;
  hostKeyChecking: HostKeyChecking;
  knownHosts?: string;
  /** The run's environment and its tracking id (for git). */
  env: NodeJS.ProcessEnv;
  trackingId: string;
  /** Aborted by a stop or kill while preparing. */
  signal: AbortSignal;
  /** git's process, while it runs (a kill must reach it). */
  onSpawn(child: ChildProcess | null): void;
  /** A secret learnt on the way (a credential in the URL) to redact from then on. */
  onSecret(secret: string): void;
  /** Starts git as the run's isolation says. */
  spawn: GitSpawn;
  /** The commit that runs, once cloned. */
  onCloned(log: RepositoryLog): void;
}

/** Writes the inline playbook or clones the repository; answers the playbook path relative to project/. */
export async function preparePlaybook(ctx: PlaybookContext, ws: Workspace): Promise<string> {
  const job = ctx.job;
  if (job.playbook) return writeInlinePlaybook(ws, job.playbook);
  const repo = job.repository;
  if (!repo?.url) throw new InitFailure("playbook_not_found", "the job has neither a playbook nor a repository");
  let repositoryLog: RepositoryLog;
  try {
    repositoryLog = await cloneRepository({
      repo,
      dest: ws.project,
      privateDir: ws.private,
      hostKeyChecking: ctx.hostKeyChecking,
      knownHosts: ctx.knownHosts,
      env: { ...ctx.env, [TRACKING_ENV]: ctx.trackingId },
      signal: ctx.signal,
      onSpawn: (c) => ctx.onSpawn(c),
      onSecret: (s) => ctx.onSecret(s),
      spawn: (cmd, args, o) => ctx.spawn(cmd, args, o),
      beforeGit: () => handOver(ws),
    });
  } catch (err) {
    if (err instanceof CloneError) throw new InitFailure("clone_failed", err.message);
    throw err;
  }
  ctx.onSpawn(null);
  ctx.onCloned(repositoryLog);
  return playbookInRepository(ws, repo.defaultPlaybook, repositoryLog);
}

/** The inline playbook (base64 of one YAML file) as project/playbook.yml. */
async function writeInlinePlaybook(ws: Workspace, playbook: string): Promise<string> {
  const compact = playbook.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length === 0) {
    throw new InitFailure("playbook_invalid", "the job's playbook is not base64 (it must be the base64 of one playbook YAML file)");
  }
  const text = Buffer.from(compact, "base64").toString("utf8");
  if (!text.trim()) throw new InitFailure("playbook_invalid", "the job's playbook is empty");
  await writeFile(join(ws.project, "playbook.yml"), text, { mode: 0o600 });
  return "playbook.yml";
}

/** `wanted` as a file inside the clone (symlinks resolved, never outside it), relative to project/. */
async function playbookInRepository(ws: Workspace, wanted: string | undefined, log: RepositoryLog): Promise<string> {
  if (!wanted || isAbsolute(wanted)) {
    throw new InitFailure("playbook_not_found", `repository.defaultPlaybook must be a path inside the repository (got ${JSON.stringify(wanted ?? "")})`);
  }
  const root = await realpath(ws.project);
  const target = resolve(root, wanted);
  let real: string | null = null;
  try {
    real = await realpath(target);
  } catch {
    real = null;
  }
  const inside = (p: string) => p === root || p.startsWith(root + sep);
  const st = real ? await stat(real).catch(() => null) : null;
  if (!real || !st?.isFile() || !inside(real)) {
    const where = `${log.branch ? `branch ${log.branch}, ` : ""}commit ${log.commit.slice(0, 12)}`;
    throw new InitFailure(
      "playbook_not_found",
      `repository.defaultPlaybook ${JSON.stringify(wanted)} is not a file in the repository (${where})${await suggestPlaybooks(root)}`,
    );
  }
  return relative(root, real);
}

async function suggestPlaybooks(root: string): Promise<string> {
  const names = (await readdir(root).catch(() => [] as string[]))
    .filter((n) => /\.ya?ml$/i.test(n))
    .sort()
    .slice(0, 10);
  return names.length ? `; playbooks at the top level: ${names.join(", ")}` : "; there is no .yml file at the top level";
}
