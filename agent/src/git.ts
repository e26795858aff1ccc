// Shallow clone of a job's repository, credentials kept out of the URL, the process list and the log.
//
// https: username/password reach git through a credential helper of our own, a script that prints
// them from a 0600 file in the workspace (so neither is ever in an argument list: an askpass
// program would be called with "Password for 'https://user@host'"); the user's own credential
// helpers are switched off so that nothing is read or stored. ssh: the key goes to a 0600 file
// used through GIT_SSH_COMMAND.
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { chmod, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { decodePrivateKey, KeyError } from "./keys.ts";
import { spawnGroup, signalGroup } from "./process-group.ts";
import type { LeaseRepository, RepositoryLog } from "./types.ts";
import { writePrivateFile } from "./workspace.ts";

export class CloneError extends Error {}

export interface CloneOptions {
  repo: LeaseRepository;
  dest: string;
  privateDir: string;
  /** "off": accept any host key and remember none; "strict": only keys already in knownHosts. */
  hostKeyChecking: "off" | "strict";
  knownHosts?: string;
  /** Environment for git (the agent's own secrets already removed). */
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Told about each git process, so that stop/kill can reach it. */
  onSpawn?: (child: ChildProcess) => void;
  /** Secret values found while preparing (a password that was in the URL): to redact. */
  onSecret?: (value: string) => void;
  /** Starts git (the run's isolated spawn); default: as the agent, in its own process group. */
  spawn?: GitSpawn;
  /** Called once the credential files are written, before git starts (to hand them to its user). */
  beforeGit?: () => Promise<void>;
}

/** Starts `cmd` (git under its lifeline) with `args` as the leader of a new process group, with `opts.cwd` existing. */
export type GitSpawn = (cmd: string, args: string[], opts: SpawnOptions & { cwd: string }) => ChildProcess;

const plainSpawn: GitSpawn = (cmd, args, opts) => spawnGroup(cmd, args, opts);

/**
 * git runs under a watcher in its process group that SIGKILLs the group once fd 3 reaches EOF:
 * the agent holds the only other end, so a clone (which can hang on a server) dies with the agent
 * whatever the isolation (the callback plugin does the same for ansible-playbook; bwrap's
 * --die-with-parent only covers the sandbox). git itself does not keep fd 3.
 */
const LIFELINE_SH = '(read -r _ <&3; kill -9 0) </dev/null >/dev/null 2>&1 & exec 3<&-; exec "$@"';
const GIT_ARGV = ["-c", LIFELINE_SH, "runner-git-lifeline", "git"];

interface GitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const SCP_LIKE = /^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:(?!\/\/)/;

/** Which transport a repository URL uses; null when the agent refuses it (local paths, file://, ext::). */
export function urlKind(url: string): "http" | "ssh" | "git" | null {
  if (SCP_LIKE.test(url)) return "ssh";
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol === "https:" || u.protocol === "http:") return "http";
  if (u.protocol === "ssh:" || u.protocol === "git+ssh:" || u.protocol === "ssh+git:") return "ssh";
  if (u.protocol === "git:") return "git";
  return null;
}

/** The URL as it may be shown: no user info. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return url;
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function runGit(
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; signal?: AbortSignal; onSpawn?: (c: ChildProcess) => void; spawn?: GitSpawn },
): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const child = (opts.spawn ?? plainSpawn)("/bin/sh", [...GIT_ARGV, ...args], { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe", "pipe"] });
    const lifeline = child.stdio[3] as (NodeJS.ReadableStream & { destroy(): void }) | null;
    lifeline?.on("error", () => {}).resume(); // nothing is ever sent on it either way
    // git is gone: its watcher ends the group (what git left in it too).
    child.once("exit", () => lifeline?.destroy());
    opts.onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < 64 * 1024) stderr += d;
    });
    const onAbort = () => signalGroup(child.pid, "SIGKILL");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (err) => {
      opts.signal?.removeEventListener("abort", onAbort);
      reject(new CloneError(`could not run git: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      opts.signal?.removeEventListener("abort", onAbort);
      // The shell's exec found no git.
      if (code === 127 && /runner-git-lifeline: .*git: not found/.test(stderr))
        reject(new CloneError("could not run git: it is not installed on the agent's machine"));
      else resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The lines of git's stderr worth showing: its fatal/error/remote lines, or the last few. */
function gitMessage(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .filter((l) => !/^Cloning into/.test(l));
  const important = lines.filter((l) => /^(fatal|error|remote):/i.test(l) || /denied|failed|not found|could not/i.test(l));
  return (important.length ? important : lines.slice(-3)).join("; ");
}

function explain(stderr: string, repo: LeaseRepository, shown: string, hadCredentials: boolean): string {
  const msg = gitMessage(stderr);
  const where = repo.branch ? `${shown} (branch or tag '${repo.branch}')` : shown;
  let hint = "";
  if (/Remote branch .* not found|couldn't find remote ref/i.test(stderr)) {
    hint = `branch or tag '${repo.branch}' does not exist in the repository`;
  } else if (
    /Authentication failed|could not read Username|could not read Password|terminal prompts disabled|HTTP Basic: Access denied|returned error: 40[13]/i.test(
      stderr,
    )
  ) {
    hint = hadCredentials
      ? "the server refused the credentials: check repository.credentials (username and password or token)"
      : "the server asks for credentials: give the job repository.credentials (username and password or token)";
  } else if (/Permission denied \(publickey|Permission denied, please try again/i.test(stderr)) {
    hint = "the ssh server refused the key: check repository.credentials.sshPrivateKey and that the key is authorised for this repository";
  } else if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(stderr)) {
    hint = "the ssh host key is not known to the agent: add it to the agent's known_hosts or run the agent with --host-key-checking off";
  } else if (/Could not resolve host|Name or service not known|Connection refused|Connection timed out|Failed to connect|No route to host/i.test(stderr)) {
    hint = "the agent could not reach the git server";
  } else if (/not found|does not appear to be a git repository|Repository not found|returned error: 404/i.test(stderr)) {
    hint = "no repository at that URL (or no access to it)";
  }
  return `git clone of ${where} failed${hint ? `: ${hint}` : ""}${msg ? ` (git: ${msg})` : ""}`;
}

/** Clones the repository into `dest` and answers the commit that will run. */
export async function cloneRepository(opts: CloneOptions): Promise<RepositoryLog> {
  const { repo } = opts;
  const kind = urlKind(repo.url);
  if (!kind) {
    throw new CloneError(`repository.url ${JSON.stringify(displayUrl(repo.url))} is not an https://, http://, ssh:// or user@host:path URL`);
  }
  const env: NodeJS.ProcessEnv = {
    ...opts.env,
    GIT_TERMINAL_PROMPT: "0",
    GIT_ALLOW_PROTOCOL: "http:https:ssh:git",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_ASKPASS: "",
    SSH_ASKPASS: "",
    LC_ALL: "C",
  };
  delete env.GIT_SSH;
  let url = repo.url;
  let username = repo.credentials?.username ?? undefined;
  let password = repo.credentials?.password ?? undefined;
  let helperConfig: string[] = [];

  if (kind === "http") {
    // Credentials in the URL would show in the process list: move them to the credential helper.
    const u = new URL(url);
    if (u.username || u.password) {
      username ??= decodeURIComponent(u.username) || undefined;
      if (u.password) {
        password ??= decodeURIComponent(u.password);
        opts.onSecret?.(decodeURIComponent(u.password));
      }
      u.username = "";
      u.password = "";
      url = u.toString();
    }
    if (username !== undefined || password !== undefined) {
      if (/[\n\0]/.test(username ?? "") || /[\n\0]/.test(password ?? "")) {
        throw new CloneError("repository.credentials: the username and password must not contain line breaks");
      }
      // git's credential helper protocol: it runs `<helper> get` and reads key=value lines.
      const answer = join(opts.privateDir, "git-credential");
      const helper = join(opts.privateDir, "git-credential-helper.sh");
      await writePrivateFile(answer, `username=${username ?? ""}\npassword=${password ?? ""}\n`);
      await writePrivateFile(helper, `#!/bin/sh\ncat >/dev/null\n[ "$1" = get ] && exec cat ${shellQuote(answer)}\nexit 0\n`);
      await chmod(helper, 0o700);
      helperConfig = ["-c", `credential.helper=!${shellQuote(helper)}`];
    }
  }

  if (kind === "ssh") {
    const ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"];
    if (repo.credentials?.sshPrivateKey) {
      let pem: string;
      try {
        pem = decodePrivateKey(repo.credentials.sshPrivateKey, "repository.credentials.sshPrivateKey");
      } catch (err) {
        throw new CloneError(err instanceof KeyError ? err.message : String(err));
      }
      const keyFile = join(opts.privateDir, "git-key.pem");
      await writePrivateFile(keyFile, pem);
      ssh.push("-i", keyFile, "-o", "IdentitiesOnly=yes");
    }
    if (opts.hostKeyChecking === "off") {
      ssh.push("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR");
    } else {
      ssh.push("-o", "StrictHostKeyChecking=yes");
      if (opts.knownHosts) ssh.push("-o", `UserKnownHostsFile=${opts.knownHosts}`);
    }
    env.GIT_SSH_COMMAND = ssh.map(shellQuote).join(" ");
  }

  // -c credential.helper= empties the helper list (nothing is read from or saved to the user's
  // store); ours, if any, comes after it.
  const base = ["-c", "credential.helper=", ...helperConfig, "-c", "core.askPass=", "-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main"];
  const branchArgs = repo.branch ? ["--branch", repo.branch] : [];
  const shown = displayUrl(url);
  await opts.beforeGit?.();
  // git runs in the (empty) destination: the one place of the workspace it may write to.
  const run = { cwd: opts.dest, env, signal: opts.signal, onSpawn: opts.onSpawn, spawn: opts.spawn };
  let r = await runGit([...base, "clone", "--depth", "1", "--single-branch", "--no-tags", ...branchArgs, "--", url, opts.dest], run);
  if (r.code !== 0 && !opts.signal?.aborted && /dumb http transport does not support shallow/i.test(r.stderr)) {
    // A server that only speaks the "dumb" HTTP protocol cannot serve a shallow clone: take it whole.
    // The directory stays (it may be a sandbox's mount point); only what is in it goes.
    for (const e of await readdir(opts.dest)) await rm(`${opts.dest}/${e}`, { recursive: true, force: true });
    r = await runGit([...base, "clone", "--single-branch", "--no-tags", ...branchArgs, "--", url, opts.dest], run);
  }
  if (opts.signal?.aborted) throw new CloneError("clone interrupted");
  if (r.code !== 0) throw new CloneError(explain(r.stderr, repo, shown, helperConfig.length > 0));

  const log = await runGit(["log", "-1", "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%B"], run);
  if (log.code !== 0) throw new CloneError(`git log in the clone failed: ${gitMessage(log.stderr)}`);
  const [commit = "", author = "", email = "", at = "0", ...msg] = log.stdout.split("\x1f");
  let branch: string | null = repo.branch ?? null;
  if (!branch) {
    const head = await runGit(["rev-parse", "--abbrev-ref", "HEAD"], run);
    branch = head.code === 0 && head.stdout.trim() !== "HEAD" ? head.stdout.trim() : null;
  }
  return {
    commit: commit.trim(),
    author,
    author_email: email,
    date: Number(at) * 1000,
    message: msg.join("\x1f").trim(),
    branch,
  };
}
