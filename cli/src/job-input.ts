// A job as the command line gives it: flags, a YAML/JSON file, or the editor.
import type { Command } from "commander";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { type Io, UsageError } from "./core.ts";

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `k=v` (a string) or `k:=json` (any JSON value), as extra vars. */
export function parseProps(items: string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of items) {
    const json = /^([^=:]+):=(.*)$/s.exec(item);
    if (json) {
      try {
        out[json[1]!.trim()] = JSON.parse(json[2]!);
      } catch {
        throw new UsageError(`--prop ${item}: the value after := must be JSON`);
      }
      continue;
    }
    const m = /^([^=]+)=(.*)$/s.exec(item);
    if (!m || !m[1]!.trim()) throw new UsageError(`--prop ${item}: must be key=value (or key:=json)`);
    out[m[1]!.trim()] = m[2];
  }
  return out;
}

/** `--host "web1 ansible_host=10.0.0.1 ansible_user=deploy"`: an id, then host vars, as in an Ansible inventory line. */
export function parseHost(spec: string): { id: string; hostVars?: Record<string, string> } {
  const [id, ...vars] = spec.trim().split(/\s+/);
  if (!id) throw new UsageError("--host needs a host id (then optional key=value host vars)");
  const hostVars: Record<string, string> = {};
  for (const v of vars) {
    const m = /^([^=]+)=(.*)$/.exec(v);
    if (!m) throw new UsageError(`--host ${spec}: ${v} must be key=value`);
    hostVars[m[1]!] = m[2]!;
  }
  return Object.keys(hostVars).length ? { id, hostVars } : { id };
}

export const tags = (t?: string) =>
  t === undefined
    ? undefined
    : t
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);

function readLocal(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${what} ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
}

/** A job body from a YAML or JSON file (YAML is a superset of JSON). */
export function readJobFile(path: string): Record<string, unknown> {
  const text = readLocal(path, "--file").toString("utf8");
  let v: unknown;
  try {
    v = parseYaml(text);
  } catch (err) {
    throw new UsageError(`--file ${path} is not YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new UsageError(`--file ${path} must hold one job (a mapping of its fields)`);
  return v as Record<string, unknown>;
}

export interface JobFlags {
  file?: string;
  name?: string;
  description?: string;
  playbook?: string;
  repo?: string;
  branch?: string;
  host?: string[];
  dynamicInventory?: boolean;
  prop?: string[];
  tags?: string;
  sshKey?: string;
  location?: string;
  ttl?: string;
  forks?: string;
}

/** Applies the job flags over `body` (a job as read, or a file's). */
export function applyJobFlags(body: Record<string, unknown>, f: JobFlags): Record<string, unknown> {
  const out = { ...body };
  if (f.name !== undefined) out.name = f.name;
  if (f.description !== undefined) out.description = f.description;
  const repo = (out.repository && typeof out.repository === "object" && Object.keys(out.repository).length ? out.repository : null) as Record<
    string,
    unknown
  > | null;
  if (f.repo !== undefined) {
    out.repository = { ...(repo ?? {}), url: f.repo, ...(f.branch ? { branch: f.branch } : {}), ...(f.playbook ? { defaultPlaybook: f.playbook } : {}) };
    delete out.playbook;
  } else if (f.playbook !== undefined) {
    if (repo && f.branch === undefined && !isLocalFile(f.playbook)) out.repository = { ...repo, defaultPlaybook: f.playbook };
    else {
      // A local file, sent inline (base64), as the API takes it.
      out.playbook = readLocal(f.playbook, "--playbook").toString("base64");
      delete out.repository;
    }
  } else if (f.branch !== undefined) {
    if (!repo) throw new UsageError("--branch goes with a repository job (--repo URL)");
    out.repository = { ...repo, branch: f.branch };
  }
  if (f.host?.length) out.hosts = f.host.map(parseHost);
  if (f.dynamicInventory !== undefined) out.useDynamicInventory = f.dynamicInventory;
  if (f.prop?.length) out.properties = { ...((out.properties as object) ?? {}), ...parseProps(f.prop) };
  if (f.tags !== undefined) out.playbookTags = tags(f.tags);
  if (f.sshKey !== undefined) out.sshPrivateKey = readLocal(f.sshKey, "--ssh-key").toString("base64");
  if (f.location !== undefined) out.location = f.location || null;
  if (f.ttl !== undefined) {
    const n = Number(f.ttl);
    if (!Number.isInteger(n)) throw new UsageError("--ttl must be a whole number of minutes");
    out.executionTtl = n;
  }
  if (f.forks !== undefined) {
    // "default" (or 0) goes back to Ansible's own; the API checks the range.
    const n = f.forks === "default" ? 0 : Number(f.forks);
    if (!Number.isInteger(n)) throw new UsageError("--forks must be a whole number (or default)");
    out.forks = n === 0 ? null : n;
  }
  return out;
}

function isLocalFile(p: string): boolean {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
}

export function jobOptions(cmd: Command): Command {
  return cmd
    .option("-f, --file <file>", "the job as YAML or JSON (the API's fields); flags override it")
    .option("--name <name>", "the job's name")
    .option("--description <text>", "what it is for")
    .option("--playbook <file|path>", "a local playbook file, sent inline; with --repo, the playbook's path in the repository")
    .option("--repo <url>", "a git repository holding the playbook")
    .option("--branch <branch>", "the repository's branch")
    .option("--host <spec>", 'a host: "id key=value ..." (repeat for more); replaces the hosts', collect)
    .option("--dynamic-inventory", "run on the account's inventory instead of listed hosts")
    .option("--prop <key=value>", "an extra var (key:=json for a JSON value; repeat for more)", collect)
    .option("--tags <tags>", "playbook tags, comma-separated")
    .option("--ssh-key <file>", "the default SSH private key (read from the file; never shown again)")
    .option("--location <location>", "run on agents of this location")
    .option("--ttl <minutes>", "how long an execution may take (default 180)")
    .option("--forks <n>", "hosts ansible-playbook works on at once (1-500; default: Ansible's)");
}

/** The fields PUT ignores (and the editor need not show). */
export const READ_ONLY = ["id", "accountAlias", "status", "createdTime", "lastUpdatedTime", "links"];

export function openEditor(io: Io, text: string): string {
  const editor = io.env.VISUAL || io.env.EDITOR;
  if (!editor || !io.stdinIsTTY) throw new UsageError("nothing to change: give flags or --file (or run on a terminal with $EDITOR set)");
  const dir = mkdtempSync(join(tmpdir(), "runner-edit-"));
  const file = join(dir, "job.yaml");
  try {
    writeFileSync(file, text, { mode: 0o600 });
    const r = spawnSync("sh", ["-c", `${editor} "$1"`, "sh", file], { stdio: "inherit" });
    if (r.status !== 0) throw new UsageError(`the editor (${editor}) exited with ${r.status}`);
    return readFileSync(file, "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
