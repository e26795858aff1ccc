// Settings: a flag wins over its RUNNER_* environment variable, which wins over the config file,
// which wins over the default. Everything is validated once, at start, and every problem named.
import { chmod, mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { homedir, hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { LogFormat, LogLevel } from "./log.ts";
import type { IsolationLevel } from "./sandbox.ts";

/** What `register` stores (and the file may also carry any of the run settings below). */
export interface ConfigFile {
  url?: string;
  agentId?: string;
  credential?: string;
  accountAlias?: string | null;
  shared?: boolean;
  name?: string;
  location?: string | null;
  concurrency?: number;
  leaseTtlMs?: number;
  heartbeatIntervalMs?: number;
  pollWaitMs?: number;
  registeredAt?: number;
  workDir?: string;
  stateDir?: string;
  logFormat?: string;
  logLevel?: string;
  shutdownGrace?: number;
  hostKeyChecking?: string;
  knownHosts?: string;
  ansiblePlaybook?: string;
  once?: boolean;
  isolation?: string;
  uidBase?: number;
  metricsListen?: string;
}

export type Source = "flag" | "env" | "file" | "default";

export interface Setting<T> {
  /** Long flag name without dashes, e.g. "concurrency". */
  flag: string;
  env: string;
  /** Key in the config file, if the file may carry it. */
  file?: keyof ConfigFile;
  parse(raw: unknown): T;
  default?: (env: NodeJS.ProcessEnv) => T;
  describe: string;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.problems = problems;
  }
}

// ---- parsers: each throws a message that completes "must …" ----

const str = (raw: unknown): string => {
  if (typeof raw !== "string" || !raw.trim()) throw new Error("must be a non-empty text");
  return raw.trim();
};

export const parseUrl = (raw: unknown): string => {
  const s = str(raw);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new Error(`must be an http(s) URL such as https://runner.example.com`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error("must be an http:// or https:// URL");
  if (u.username || u.password) throw new Error("must not carry a user name or password");
  if (u.search || u.hash) throw new Error("must not carry a query or fragment");
  return u.toString().replace(/\/+$/, "");
};

const int =
  (min: number, max: number) =>
  (raw: unknown): number => {
    const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`must be a whole number from ${min} to ${max}`);
    return n;
  };

const oneOf =
  <T extends string>(...values: T[]) =>
  (raw: unknown): T => {
    const s = typeof raw === "string" ? raw.trim().toLowerCase() : "";
    if (!(values as string[]).includes(s)) throw new Error(`must be one of ${values.join(", ")}`);
    return s as T;
  };

const bool = (raw: unknown): boolean => {
  if (typeof raw === "boolean") return raw;
  const s = typeof raw === "string" ? raw.trim().toLowerCase() : "";
  if (["1", "true", "yes", "on"].includes(s)) return true;
  if (["0", "false", "no", "off", ""].includes(s)) return false;
  throw new Error("must be true or false");
};

const path = (raw: unknown): string => resolve(str(raw));

const location = (raw: unknown): string | null => {
  if (raw === null) return null;
  const s = str(raw);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(s)) throw new Error("must be 1-64 of A-Z a-z 0-9 _ . -");
  return s;
};

const name = (raw: unknown): string => {
  const s = str(raw);
  if (s.length > 100 || /[\x00-\x1f]/.test(s)) throw new Error("must be at most 100 printable characters");
  return s;
};

/** "127.0.0.1:9464", "[::1]:9464" or ":9464" (every address). */
export function parseListen(raw: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65_535) throw new Error("must be HOST:PORT, e.g. 127.0.0.1:9464");
  const host = m[1] ?? m[2];
  return { host: host || undefined, port };
}

const listen = (raw: unknown): string => {
  const s = str(raw);
  parseListen(s);
  return s;
};

// ---- the settings ----

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME?.startsWith("/") ? env.XDG_CONFIG_HOME : join(homedir(), ".config");
  return join(base, "runner-agent", "config.json");
}

export const SETTINGS = {
  config: { flag: "config", env: "RUNNER_CONFIG", parse: path, default: (env) => defaultConfigPath(env), describe: "config file (made 0600 by register)" },
  url: { flag: "url", env: "RUNNER_URL", file: "url", parse: parseUrl, describe: "Runner API base URL" },
  token: { flag: "token", env: "RUNNER_TOKEN", parse: str, describe: "registration token (rrt_…)" },
  operatorToken: { flag: "operator-token", env: "RUNNER_OPERATOR_TOKEN", parse: str, describe: "operator JWT (shared-pool agent)" },
  credential: { flag: "credential", env: "RUNNER_CREDENTIAL", file: "credential", parse: str, describe: "agent credential (rac_…)" },
  name: { flag: "name", env: "RUNNER_NAME", file: "name", parse: name, default: () => hostname(), describe: "agent name" },
  location: { flag: "location", env: "RUNNER_LOCATION", file: "location", parse: location, default: () => null, describe: "location" },
  concurrency: { flag: "concurrency", env: "RUNNER_CONCURRENCY", file: "concurrency", parse: int(1, 64), default: () => 1, describe: "executions at once" },
  // No default here: it is <state dir>/work, and the state dir depends on the agent id.
  workDir: { flag: "work-dir", env: "RUNNER_WORK_DIR", file: "workDir", parse: path, describe: "workspaces directory" },
  stateDir: {
    flag: "state-dir",
    env: "RUNNER_STATE_DIR",
    file: "stateDir",
    parse: path,
    describe: "the agent's state directory (what it holds, its workspaces)",
  },
  logFormat: {
    flag: "log-format",
    env: "RUNNER_LOG_FORMAT",
    file: "logFormat",
    parse: oneOf<LogFormat>("text", "json"),
    default: () => "text" as LogFormat,
    describe: "log format",
  },
  logLevel: {
    flag: "log-level",
    env: "RUNNER_LOG_LEVEL",
    file: "logLevel",
    parse: oneOf<LogLevel>("debug", "info", "warn", "error"),
    default: () => "info" as LogLevel,
    describe: "log level",
  },
  shutdownGrace: {
    flag: "shutdown-grace",
    env: "RUNNER_SHUTDOWN_GRACE",
    file: "shutdownGrace",
    parse: int(0, 86_400),
    default: () => 60,
    describe: "seconds running executions get on SIGTERM",
  },
  hostKeyChecking: {
    flag: "host-key-checking",
    env: "RUNNER_HOST_KEY_CHECKING",
    file: "hostKeyChecking",
    parse: oneOf<"off" | "strict">("off", "strict"),
    default: () => "off" as const,
    describe: "ssh host key checking",
  },
  knownHosts: { flag: "known-hosts", env: "RUNNER_KNOWN_HOSTS", file: "knownHosts", parse: path, describe: "known_hosts file for strict checking" },
  ansiblePlaybook: {
    flag: "ansible-playbook",
    env: "RUNNER_ANSIBLE_PLAYBOOK",
    file: "ansiblePlaybook",
    parse: str,
    default: () => "ansible-playbook",
    describe: "ansible-playbook command",
  },
  once: { flag: "once", env: "RUNNER_ONCE", file: "once", parse: bool, default: () => false, describe: "exit after one execution" },
  isolation: {
    flag: "isolation",
    env: "RUNNER_ISOLATION",
    file: "isolation",
    parse: oneOf<IsolationLevel>("sandbox", "uid", "none"),
    describe: "how executions are isolated from the agent and each other: sandbox, uid or none",
  },
  uidBase: {
    flag: "uid-base",
    env: "RUNNER_UID_BASE",
    file: "uidBase",
    parse: int(1000, 2_000_000_000),
    describe: "first uid/gid of the slot users (a root agent runs slot i as uid-base+i)",
  },
  metricsListen: {
    flag: "metrics-listen",
    env: "RUNNER_METRICS_LISTEN",
    file: "metricsListen",
    parse: listen,
    describe: "serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9464 (default: off)",
  },
  force: { flag: "force", env: "RUNNER_FORCE", parse: bool, default: () => false, describe: "replace the registration" },
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof SETTINGS;
export type SettingName = keyof Settings;
type ValueOf<K extends SettingName> = ReturnType<Settings[K]["parse"]>;
export type Resolved<K extends SettingName> = { [P in K]: ValueOf<P> | undefined } & { sources: Partial<Record<K, Source>> };

/** camelCase setting → commander's option key (commander camel-cases "--work-dir" to "workDir"). */
function flagKey(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export async function readConfigFile(file: string): Promise<{ data: ConfigFile; exists: boolean; warnings: string[] }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { data: {}, exists: false, warnings: [] };
    throw new ConfigError([`config file ${file}: ${(err as Error).message}`]);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`config file ${file} is not valid JSON: ${(err as Error).message}`]);
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) throw new ConfigError([`config file ${file} must hold a JSON object`]);
  const warnings: string[] = [];
  const st = await stat(file);
  if ((st.mode & 0o077) !== 0) {
    // It holds the agent's credential: only its owner may read it.
    const mine = typeof process.getuid !== "function" || st.uid === process.getuid();
    if (
      mine &&
      (await chmod(file, 0o600).then(
        () => true,
        () => false,
      ))
    ) {
      warnings.push(`config file ${file} was readable by others (mode ${(st.mode & 0o777).toString(8)}): made it 0600`);
    } else warnings.push(`config file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
  }
  return { data: data as ConfigFile, exists: true, warnings };
}

/** Writes the config file atomically, 0600, in a 0700 directory it creates if needed. */
export async function writeConfigFile(file: string, data: ConfigFile): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(data, null, 2) + "\n", { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/**
 * Resolves the named settings from flags (commander's parsed options), the environment and the
 * file. Throws one ConfigError naming every bad value and where it came from.
 */
export function resolveSettings<K extends SettingName>(
  names: readonly K[],
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  file: ConfigFile,
  required: readonly K[] = [],
  /** When given, problems are added here for the caller to report with its own, instead of thrown. */
  collect?: string[],
): Resolved<K> {
  const problems: string[] = collect ?? [];
  const out = { sources: {} } as Resolved<K>;
  for (const n of names) {
    const s = SETTINGS[n] as Setting<unknown>;
    const fromFlag = flags[flagKey(s.flag)];
    const fromEnv = env[s.env];
    const fromFile = s.file ? file[s.file] : undefined;
    let raw: unknown;
    let source: Source;
    let where: string;
    if (fromFlag !== undefined) [raw, source, where] = [fromFlag, "flag", `--${s.flag}`];
    else if (fromEnv !== undefined && fromEnv !== "") [raw, source, where] = [fromEnv, "env", s.env];
    else if (fromFile !== undefined) [raw, source, where] = [fromFile, "file", `"${String(s.file)}" in the config file`];
    else {
      (out as Record<string, unknown>)[n] = s.default?.(env);
      if (s.default) out.sources[n] = "default";
      else if (required.includes(n)) problems.push(`--${s.flag} (or ${s.env}) is required: ${s.describe}`);
      continue;
    }
    try {
      (out as Record<string, unknown>)[n] = s.parse(raw);
      out.sources[n] = source;
    } catch (err) {
      const shown = n === "token" || n === "operatorToken" || n === "credential" ? "(hidden)" : JSON.stringify(raw);
      problems.push(`${where} ${(err as Error).message} (got ${shown})`);
    }
  }
  if (problems.length && !collect) throw new ConfigError(problems);
  return out;
}
