// The `runner` command: Runner's API for people (tables, colours on a terminal) and for scripts
// and CI (--json, exit codes that follow an execution's outcome).
import { Command, CommanderError } from "commander";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { Api, ApiError, readSse, type Page } from "./api.ts";
import type { Agent, Execution, Job, JobWithExecution, LoginAnswer, Schedule } from "./api-types.ts";
import { colours, duration, statusColour, table, when, type Colours } from "./output.ts";
import { profilePath, readProfile, removeProfile, writeProfile, type Profile } from "./profile.ts";
import { VERSION } from "./version.ts";

export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  FAILURE: 3,
  INIT_FAILURE: 4,
  STOPPED: 5,
  KILLED: 6,
} as const;

/** The exit code of a followed execution, from its final status. */
export const OUTCOME_EXIT: Record<string, number> = {
  SUCCESS: EXIT.OK,
  FAILURE: EXIT.FAILURE,
  INIT_FAILURE: EXIT.INIT_FAILURE,
  STOPPED: EXIT.STOPPED,
  KILLED: EXIT.KILLED,
};
const TERMINAL = Object.keys(OUTCOME_EXIT);

const EXIT_CODES = `Exit codes:
  0  done; with --follow (start, restart, logs -f): the execution ended SUCCESS
  1  an error: the API refused the request (its detail and fields are shown), or could not be reached
  2  invalid usage, or not logged in
  3  the followed execution ended FAILURE
  4  the followed execution ended INIT_FAILURE (the workspace, clone or playbook could not be set up)
  5  the followed execution ended STOPPED
  6  the followed execution ended KILLED`;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  stdoutIsTTY: boolean;
  stdinIsTTY: boolean;
}

const processIo: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  env: process.env,
  stdoutIsTTY: !!process.stdout.isTTY,
  stdinIsTTY: !!process.stdin.isTTY,
};

class UsageError extends Error {}

interface Globals {
  profile?: string;
  account?: string;
  json?: boolean;
  color?: boolean;
}

/** What every command that talks to the API needs. */
interface Ctx {
  api: Api;
  account: string;
  json: boolean;
  c: Colours;
  io: Io;
  profile: string;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- helpers

function collect(value: string, previous: string[] = []): string[] {
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

const tags = (t?: string) =>
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
function readJobFile(path: string): Record<string, unknown> {
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

interface JobFlags {
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
}

/** Applies the job flags over `body` (a job as read, or a file's). */
function applyJobFlags(body: Record<string, unknown>, f: JobFlags): Record<string, unknown> {
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

function jobOptions(cmd: Command): Command {
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
    .option("--ttl <minutes>", "how long an execution may take (default 180)");
}

/** The fields PUT ignores (and the editor need not show). */
const READ_ONLY = ["id", "accountAlias", "status", "createdTime", "lastUpdatedTime", "links"];

// ---------------------------------------------------------------- context

async function context(cmd: Command, io: Io): Promise<Ctx> {
  const g = cmd.optsWithGlobals() as Globals;
  const profile = g.profile ?? io.env.RUNNER_PROFILE ?? "default";
  const c = colours(g.color !== false && io.stdoutIsTTY && !io.env.NO_COLOR);
  // CI may bring its own token: RUNNER_URL and RUNNER_API_TOKEN (and RUNNER_ACCOUNT) win over the profile.
  let p: Profile | null = null;
  if (io.env.RUNNER_API_TOKEN) {
    if (!io.env.RUNNER_URL) throw new UsageError("RUNNER_API_TOKEN needs RUNNER_URL too");
    p = { url: io.env.RUNNER_URL, token: io.env.RUNNER_API_TOKEN, account: tokenAccount(io.env.RUNNER_API_TOKEN) };
  } else {
    p = await readProfile(io.env, profile);
    if (!p) throw new UsageError(`not logged in${profile === "default" ? "" : ` (profile ${profile})`}: runner login --url URL --username NAME`);
    if (p.expiresAt && p.expiresAt < Date.now())
      throw new UsageError(`the login${profile === "default" ? "" : ` of profile ${profile}`} expired at ${when(p.expiresAt)}: runner login again`);
  }
  const account = g.account ?? io.env.RUNNER_ACCOUNT ?? p.account;
  if (!account) throw new UsageError("which account? give --account (or RUNNER_ACCOUNT)");
  return { api: new Api(p.url, p.token), account, json: !!g.json, c, io, profile };
}

/** The single account a JWT names, if it names one (for RUNNER_API_TOKEN). */
function tokenAccount(token: string): string | undefined {
  try {
    const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { accounts?: unknown };
    return Array.isArray(claims.accounts) && claims.accounts.length === 1 && typeof claims.accounts[0] === "string" ? claims.accounts[0] : undefined;
  } catch {
    return undefined;
  }
}

function print(ctx: Ctx, value: unknown, human: () => string): void {
  ctx.io.out(ctx.json ? JSON.stringify(value, null, 2) + "\n" : human());
}

/** A job by id, or by its exact name. */
async function resolveJob(ctx: Ctx, ref: string): Promise<Job> {
  try {
    return await ctx.api.json<Job>("GET", `/jobs/${enc(ctx.account)}/${enc(ref)}`);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  const found: Job[] = [];
  for (let page = 0; page < 20; page++) {
    const p = await ctx.api.json<Page<Job>>("GET", `/jobs/${enc(ctx.account)}?page=${page}&size=100`);
    found.push(...p.results.filter((j) => j.name === ref));
    if ((page + 1) * p.size >= p.totalSize) break;
  }
  if (found.length === 1) return found[0]!;
  if (found.length > 1) throw new UsageError(`${found.length} jobs are named ${JSON.stringify(ref)}: give the id (${found.map((j) => j.id).join(", ")})`);
  throw new ApiError(`no job ${JSON.stringify(ref)} in account ${ctx.account} (neither an id nor a name)`, 404);
}

/** The job an execution belongs to: --job, else looked up in the account's executions (newest first). */
async function executionJob(ctx: Ctx, executionId: string, job?: string): Promise<string> {
  if (job) return (await resolveJob(ctx, job)).id as string;
  for (let page = 0; page < 20; page++) {
    const p = await ctx.api.json<Page<Execution>>("GET", `/jobs/${enc(ctx.account)}/executions?page=${page}&size=100`);
    const e = p.results.find((x) => x.execution_id === executionId);
    if (e) return e.job_id as string;
    if ((page + 1) * p.size >= p.totalSize) break;
  }
  throw new ApiError(`no execution ${executionId} among account ${ctx.account}'s latest 2000 executions (give --job JOB if it is older)`, 404);
}

const executionPath = (ctx: Ctx, jobId: string, executionId: string) => `/jobs/${enc(ctx.account)}/${enc(jobId)}/executions/${enc(executionId)}`;

/**
 * Streams an execution's log to `write` until it ends (reconnecting where it left off if the stream
 * drops) and answers its final status.
 */
async function follow(ctx: Ctx, jobId: string, executionId: string, write: (t: string) => void): Promise<string> {
  const path = executionPath(ctx, jobId, executionId);
  let lastId: string | undefined;
  for (let attempt = 0; ; attempt++) {
    let status: string | undefined;
    try {
      const res = await ctx.api.raw("GET", `${path}/log?follow=true`, {
        headers: { accept: "text/event-stream", ...(lastId ? { "last-event-id": lastId } : {}) },
      });
      await readSse(res, (e) => {
        if (e.id) lastId = e.id;
        if (e.event === "end") status = e.data.trim();
        else write(e.data);
      });
    } catch (err) {
      if (err instanceof ApiError && err.status !== 0 && err.status < 500) throw err;
      if (attempt >= 30) throw err;
    }
    if (status && TERMINAL.includes(status)) return status;
    // The stream ended without the end: the execution may have ended meanwhile, or the connection dropped.
    const e = await ctx.api.json<Execution>("GET", path);
    if (TERMINAL.includes(e.status)) {
      // Whatever was logged after the last piece we got.
      const rest = await ctx.api.raw("GET", `${path}/log${lastId ? `?after=${enc(lastId)}` : ""}`);
      write(await rest.text());
      return e.status as string;
    }
    await new Promise((r) => setTimeout(r, Math.min(5000, 500 * (attempt + 1))));
  }
}

async function followToExit(ctx: Ctx, jobId: string, executionId: string): Promise<number> {
  // With --json the log goes to stderr, so that stdout holds only the final execution.
  const write = ctx.json ? ctx.io.err : ctx.io.out;
  const status = await follow(ctx, jobId, executionId, write);
  const e = await ctx.api.json<Execution>("GET", executionPath(ctx, jobId, executionId));
  if (ctx.json) ctx.io.out(JSON.stringify(e, null, 2) + "\n");
  else ctx.io.err(`${ctx.c.dim("execution")} ${executionId} ${statusColour(ctx.c, status)}${e.reason && status !== "SUCCESS" ? ` (${e.reason})` : ""}\n`);
  return OUTCOME_EXIT[status] ?? EXIT.ERROR;
}

function executionRows(ctx: Ctx, list: Execution[]): string {
  return (
    table(
      ["EXECUTION", "JOB", "STATUS", "TRIGGER", "CREATED", "TOOK", "REASON"],
      list.map((e) => {
        const timers = (e.timers ?? []) as { start: number; end: number | null }[];
        const took = timers.reduce((n, t) => n + ((t.end ?? Date.now()) - t.start), 0);
        return [
          e.execution_id,
          e.job_id,
          statusColour(ctx.c, e.status),
          e.trigger ?? "-",
          when(e.created_time),
          timers.length ? duration(took) : "-",
          e.reason ?? "",
        ];
      }),
      ctx.c,
    ) || ctx.c.dim("no executions\n")
  );
}

function jobSource(j: Job): string {
  if (j.repository?.url) return `${j.repository.url}${j.repository.branch ? `@${j.repository.branch}` : ""}:${j.repository.defaultPlaybook ?? ""}`;
  return "inline";
}

function openEditor(io: Io, text: string): string {
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

// ---------------------------------------------------------------- the program

export function buildProgram(io: Io, setExit: (code: number) => void): Command {
  const program = new Command();
  program
    .name("runner")
    .description(
      "The command-line client of Runner, a job service for Ansible: jobs, executions and their logs, schedules and agents.\n\n" +
        "Log in once (runner login), then act on your account. In CI, `runner start JOB --follow` runs a " +
        "playbook through Runner in one line, streams its log and exits with its outcome.",
    )
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help (also: runner help <command>)")
    .option("--profile <name>", 'the login to use (default: $RUNNER_PROFILE, else "default")')
    .option("--account <alias>", "the account to act on (default: the login's; env RUNNER_ACCOUNT)")
    .option("--json", "print JSON (the API's answers) instead of tables")
    .option("--no-color", "no colours (they are only used on a terminal, and never with NO_COLOR set)")
    .showHelpAfterError("(run runner --help for usage)")
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride()
    .addHelpText(
      "after",
      `
Examples:
  runner login --url https://runner.example.com --username deploy-bot
  runner jobs create --name site --playbook site.yml --host "web1 ansible_host=10.0.0.1"
  runner jobs create --name app --repo https://git.example.com/ops.git --branch main --playbook deploy.yml --host web1
  runner start site --prop version=1.2.3 --tags deploy --follow
  runner executions ls --status FAILURE
  runner logs EXECUTION -f

Environment: RUNNER_PASSWORD (login without a prompt), RUNNER_PROFILE, RUNNER_ACCOUNT; in CI without
a login: RUNNER_URL with RUNNER_API_TOKEN (a bearer token). Logins are kept 0600 in
$XDG_CONFIG_HOME/runner/<profile>.json (default ~/.config/runner/).

${EXIT_CODES}`,
    );

  // Commander calls an action with its arguments, its options, then the command itself; the
  // command's function answers its exit code, or nothing for EXIT.OK.
  const act =
    <A extends unknown[]>(fn: (ctx: Ctx, ...args: A) => Promise<number | undefined> | Promise<void>) =>
    async (...args: [...A, Command]) => {
      const cmd = args[args.length - 1] as Command;
      const ctx = await context(cmd, io);
      setExit((await fn(ctx, ...(args.slice(0, -1) as A))) ?? EXIT.OK);
    };

  // ---- login / logout

  program
    .command("login")
    .description("log in as a service account and keep its token (0600) for the next commands")
    .requiredOption("--url <url>", "the Runner API, e.g. https://runner.example.com")
    .requiredOption("--username <name>", "the service account's username")
    .option("--password-stdin", "read the password from standard input (else RUNNER_PASSWORD, else a prompt)")
    .action(async (opts: { url: string; username: string; passwordStdin?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals() as Globals;
      const profile = g.profile ?? io.env.RUNNER_PROFILE ?? "default";
      let url: URL;
      try {
        url = new URL(opts.url);
        if (!/^https?:$/.test(url.protocol)) throw new Error();
      } catch {
        throw new UsageError(`--url must be an http(s) URL (got ${JSON.stringify(opts.url)})`);
      }
      const base = url.origin + url.pathname.replace(/\/+$/, "");
      let password = io.env.RUNNER_PASSWORD;
      if (opts.passwordStdin) password = readFileSync(0, "utf8").replace(/\r?\n$/, "");
      if (!password) password = await promptPassword(io, `Password for ${opts.username}: `);
      const a = await new Api(base).json<LoginAnswer>("POST", "/authentication/login", { username: opts.username, password });
      const expiresAt = Date.now() + (Number(a.expiresIn) || 3600) * 1000;
      const p: Profile = {
        url: base,
        token: a.bearerToken ?? a.accessToken,
        username: a.userName ?? opts.username,
        account: a.accountAlias,
        role: a.roles?.[0],
        expiresAt,
      };
      const file = await writeProfile(io.env, profile, p);
      if (g.json) io.out(JSON.stringify({ url: base, username: p.username, account: p.account, role: p.role, expiresAt, profile, file }, null, 2) + "\n");
      else io.err(`Logged in to ${base} as ${p.username} (account ${p.account}, role ${p.role ?? "?"}) until ${when(expiresAt)}; token kept in ${file}\n`);
      setExit(EXIT.OK);
    });

  program
    .command("logout")
    .description("forget the profile's token")
    .action(async (_opts: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals() as Globals;
      const profile = g.profile ?? io.env.RUNNER_PROFILE ?? "default";
      io.err((await removeProfile(io.env, profile)) ? `Logged out (removed ${profilePath(io.env, profile)})\n` : "Not logged in\n");
      setExit(EXIT.OK);
    });

  // ---- jobs

  const jobs = program.command("jobs").description("list, show, create, edit and remove jobs");
  jobs
    .command("ls")
    .description("the account's jobs, newest first")
    .option("--page <n>", "page (from 0)", "0")
    .option("--size <n>", "per page (1-100)", "100")
    .action(
      act(async (ctx, o: { page: string; size: string }) => {
        const p = await ctx.api.json<Page<Job>>("GET", `/jobs/${enc(ctx.account)}?page=${enc(o.page)}&size=${enc(o.size)}`);
        print(
          ctx,
          p,
          () =>
            table(
              ["ID", "NAME", "PLAYBOOK", "HOSTS", "UPDATED"],
              p.results.map((j) => [
                j.id,
                j.name ?? "",
                jobSource(j),
                j.useDynamicInventory ? "inventory" : String(j.hosts?.length ?? 0),
                when(j.lastUpdatedTime),
              ]),
              ctx.c,
            ) || ctx.c.dim("no jobs\n"),
        );
      }),
    );
  jobs
    .command("show <job>")
    .description("one job (by id or name), secrets shown only as has… flags")
    .action(
      act(async (ctx, ref: string) => {
        const j = await resolveJob(ctx, ref);
        print(ctx, j, () => toYaml(j));
      }),
    );
  jobOptions(jobs.command("create").description("create a job from flags or a YAML/JSON file"))
    .option("--start", "start it at once (prints the execution)")
    .action(
      act(async (ctx, o: JobFlags & { start?: boolean }) => {
        const body = applyJobFlags(o.file ? readJobFile(o.file) : {}, o);
        const j = await ctx.api.json<JobWithExecution>("POST", `/jobs/${enc(ctx.account)}?immediate=${o.start ? "true" : "false"}`, body);
        // The schema leaves `execution` open (a record); it is the execution started.
        const x = j.execution as Execution | undefined;
        print(ctx, j, () => `${j.id}${x ? `\n${ctx.c.dim("execution")} ${x.execution_id} ${statusColour(ctx.c, x.status)}` : ""}\n`);
      }),
    );
  jobOptions(jobs.command("edit <job>").description("change a job: flags change those fields, --file replaces the definition; neither: $EDITOR")).action(
    act(async (ctx, ref: string, o: JobFlags) => {
      const current = await resolveJob(ctx, ref);
      let body: Record<string, unknown>;
      const flagged = Object.entries(o).some(([k, v]) => k !== "file" && v !== undefined);
      if (o.file) body = applyJobFlags(readJobFile(o.file), o);
      else if (flagged) body = applyJobFlags(current, o);
      else {
        const editable = Object.fromEntries(Object.entries(current).filter(([k]) => !READ_ONLY.includes(k) && !k.startsWith("has")));
        const text = `# Job ${current.id}: saved when you quit; secrets the file leaves out are kept.\n${toYaml(editable)}`;
        const edited = openEditor(ctx.io, text);
        if (edited === text) {
          ctx.io.err("no change\n");
          return EXIT.OK;
        }
        const v = parseYaml(edited) as unknown;
        if (!v || typeof v !== "object") throw new UsageError("the edited job must be a mapping of its fields");
        body = v as Record<string, unknown>;
      }
      const j = await ctx.api.json<Job>("PUT", `/jobs/${enc(ctx.account)}/${enc(current.id)}`, body);
      print(ctx, j, () => `${j.id} updated\n`);
    }),
  );
  jobs
    .command("rm <job>")
    .description("delete a job (and its schedules); refused while one of its executions is active")
    .action(
      act(async (ctx, ref: string) => {
        const j = await resolveJob(ctx, ref);
        await ctx.api.json("DELETE", `/jobs/${enc(ctx.account)}/${enc(j.id)}`);
        print(ctx, { id: j.id, deleted: true }, () => `${j.id} deleted\n`);
      }),
    );

  // ---- executions

  program
    .command("start <job>")
    .description("start a job (by id or name); --follow streams the log and exits with the outcome")
    .option("--prop <key=value>", "an extra var for this run (key:=json for JSON; repeat for more)", collect)
    .option("--tags <tags>", "playbook tags for this run, comma-separated")
    .option("--check", "a dry run (ansible-playbook --check)")
    .option("--diff", "show changes (ansible-playbook --diff)")
    .option("-f, --follow", "stream the log until the execution ends, and exit with its outcome (see the exit codes)")
    .addHelpText("after", `\n${EXIT_CODES}\n`)
    .action(
      act(async (ctx, ref: string, o: { prop?: string[]; tags?: string; check?: boolean; diff?: boolean; follow?: boolean }) => {
        const j = await resolveJob(ctx, ref);
        const body: Record<string, unknown> = {};
        if (o.prop?.length) body.properties = parseProps(o.prop);
        if (o.tags !== undefined) body.playbookTags = tags(o.tags);
        if (o.check) body.check = true;
        if (o.diff) body.diff = true;
        const e = await ctx.api.json<Execution>("POST", `/jobs/${enc(ctx.account)}/${enc(j.id)}/start`, body);
        if (!o.follow) {
          print(ctx, e, () => `${e.execution_id}\n`);
          return EXIT.OK;
        }
        if (!ctx.json) ctx.io.err(`${ctx.c.dim("execution")} ${e.execution_id} ${ctx.c.dim(`of job ${j.name ?? j.id}`)}\n`);
        return followToExit(ctx, j.id, e.execution_id);
      }),
    );

  program
    .command("logs <execution>")
    .description("an execution's log; -f follows it live until the execution ends (and exits with its outcome)")
    .option("-f, --follow", "follow until the execution ends")
    .option("--job <job>", "its job (found from the account's executions otherwise)")
    .action(
      act(async (ctx, id: string, o: { follow?: boolean; job?: string }) => {
        const jobId = await executionJob(ctx, id, o.job);
        if (o.follow) return followToExit(ctx, jobId, id);
        const res = await ctx.api.raw("GET", `${executionPath(ctx, jobId, id)}/log`);
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) ctx.io.out(Buffer.from(chunk).toString("utf8"));
      }),
    );

  const executions = program.command("executions").description("list and show executions");
  executions
    .command("ls")
    .description("the account's executions (or one job's), newest first")
    .option("--status <status>", "only those in this status (PENDING, RUNNING, SUCCESS, FAILURE, …)")
    .option("--job <job>", "only this job's")
    .option("--page <n>", "page (from 0)", "0")
    .option("--size <n>", "per page (1-100)", "100")
    .action(
      act(async (ctx, o: { status?: string; job?: string; page: string; size: string }) => {
        const base = o.job ? `/jobs/${enc(ctx.account)}/${enc((await resolveJob(ctx, o.job)).id)}/executions` : `/jobs/${enc(ctx.account)}/executions`;
        const q = new URLSearchParams({ page: o.page, size: o.size, ...(o.status ? { status: o.status.toUpperCase() } : {}) });
        const p = await ctx.api.json<Page<Execution>>("GET", `${base}?${q}`);
        print(ctx, p, () => executionRows(ctx, p.results));
      }),
    );
  executions
    .command("show <execution>")
    .description("one execution: status, timers, per-host results")
    .option("--job <job>", "its job (found from the account's executions otherwise)")
    .action(
      act(async (ctx, id: string, o: { job?: string }) => {
        const e = await ctx.api.json<Execution>("GET", executionPath(ctx, await executionJob(ctx, id, o.job), id));
        print(ctx, e, () => toYaml(e));
      }),
    );

  const action = (name: "stop" | "kill" | "restart", description: string) => {
    const cmd = program
      .command(`${name} <execution>`)
      .description(description)
      .option("--job <job>", "its job (found from the account's executions otherwise)");
    if (name === "stop") cmd.option("--expiry <seconds>", "kill it if it has not stopped after this long (0: never)");
    if (name === "restart") cmd.option("-f, --follow", "stream the log until it ends, and exit with its outcome");
    cmd.action(
      act(async (ctx, id: string, o: { job?: string; expiry?: string; follow?: boolean }) => {
        const jobId = await executionJob(ctx, id, o.job);
        const body = o.expiry !== undefined ? { expiryDuration: Number(o.expiry) } : undefined;
        const e = await ctx.api.json<Execution>("POST", `${executionPath(ctx, jobId, id)}/${name}`, body);
        if (o.follow) return followToExit(ctx, jobId, id);
        print(ctx, e, () => `${e.execution_id} ${statusColour(ctx.c, e.status)}\n`);
      }),
    );
  };
  action("stop", "stop an execution gracefully (the running task finishes)");
  action("kill", "kill an execution at once");
  action("restart", "run a FAILURE or INIT_FAILURE execution again, on its failed hosts");

  // ---- schedules

  const schedules = program.command("schedules").description("a job's schedules: list, add, remove");
  schedules
    .command("ls <job>")
    .description("a job's schedules")
    .action(
      act(async (ctx, ref: string) => {
        const j = await resolveJob(ctx, ref);
        const p = await ctx.api.json<Page<Schedule>>("GET", `/jobs/${enc(ctx.account)}/${enc(j.id)}/schedules`);
        print(
          ctx,
          p,
          () =>
            table(
              ["ID", "TRIGGER", "TIMEZONE", "ENABLED", "NEXT RUN", "LAST RUN", "DESCRIPTION"],
              p.results.map((s) => [
                s.id,
                `${s.trigger?.type ?? "?"} ${s.trigger?.expression ?? ""}`,
                s.timezone ?? "UTC",
                s.enabled === false ? "no" : "yes",
                when(s.nextRunTime),
                when(s.lastRunTime),
                s.description ?? "",
              ]),
              ctx.c,
            ) || ctx.c.dim("no schedules\n"),
        );
      }),
    );
  schedules
    .command("add <job>")
    .description("start a job on a schedule, on behalf of a service account")
    .option("--cron <expression>", 'a 5-field cron expression (or @hourly, @daily, …), e.g. "0 3 * * *"')
    .option("--at <instant>", "once, at this ISO-8601 instant, e.g. 2030-01-01T03:00:00Z")
    .requiredOption("--service-account <alias>", "the service account it runs as")
    .requiredOption("--description <text>", "what it is for")
    .option("--timezone <iana>", "e.g. Europe/Paris (default UTC)")
    .option("--disabled", "create it disabled")
    .action(
      act(async (ctx, ref: string, o: { cron?: string; at?: string; serviceAccount: string; description: string; timezone?: string; disabled?: boolean }) => {
        if (!!o.cron === !!o.at) throw new UsageError("give one of --cron EXPRESSION or --at INSTANT");
        const j = await resolveJob(ctx, ref);
        const body: Record<string, unknown> = {
          description: o.description,
          serviceAccountAlias: o.serviceAccount,
          trigger: o.cron ? { type: "cron", expression: o.cron } : { type: "date", expression: o.at },
          ...(o.timezone ? { timezone: o.timezone } : {}),
          ...(o.disabled ? { enabled: false } : {}),
        };
        const s = await ctx.api.json<Schedule>("POST", `/jobs/${enc(ctx.account)}/${enc(j.id)}/schedules`, body);
        print(ctx, s, () => `${s.id}${s.nextRunTime ? ` ${ctx.c.dim("next run")} ${when(s.nextRunTime)}` : ""}\n`);
      }),
    );
  schedules
    .command("rm <job> <schedule>")
    .description("remove a schedule")
    .action(
      act(async (ctx, ref: string, scheduleId: string) => {
        const j = await resolveJob(ctx, ref);
        await ctx.api.json("DELETE", `/jobs/${enc(ctx.account)}/${enc(j.id)}/schedules/${enc(scheduleId)}`);
        print(ctx, { id: scheduleId, deleted: true }, () => `${scheduleId} deleted\n`);
      }),
    );

  // ---- agents

  const agents = program.command("agents").description("the account's agents");
  agents
    .command("ls")
    .description("agents: location, version, online, last seen, running executions")
    .option("--shared", "the shared pool's agents (operators only)")
    .action(
      act(async (ctx, o: { shared?: boolean }) => {
        const p = await ctx.api.json<Page<Agent>>("GET", o.shared ? "/minions/~shared" : `/minions/${enc(ctx.account)}`);
        print(
          ctx,
          p,
          () =>
            table(
              ["ID", "NAME", "LOCATION", "VERSION", "STATE", "LAST SEEN", "RUNNING"],
              p.results.map((a) => [
                a.id,
                a.name,
                a.location ?? "-",
                a.version ?? "-",
                statusColour(ctx.c, a.online ? "online" : "offline"),
                when(a.lastSeen),
                String(a.runningExecutions?.length ?? 0),
              ]),
              ctx.c,
            ) || ctx.c.dim("no agents\n"),
        );
      }),
    );

  return program;
}

async function promptPassword(io: Io, prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!io.stdinIsTTY || typeof stdin.setRawMode !== "function") {
    throw new UsageError("no terminal to ask the password on: set RUNNER_PASSWORD, or pipe it with --password-stdin");
  }
  io.err(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding("utf8");
  return new Promise((resolve, reject) => {
    let pw = "";
    const done = () => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      io.err("\n");
    };
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === "\r" || ch === "\n") {
          done();
          resolve(pw);
          return;
        }
        if (ch === "\u0003" || ch === "\u0004") {
          done();
          reject(new UsageError("no password given"));
          return;
        }
        if (ch === "\u007f" || ch === "\b") pw = pw.slice(0, -1);
        else pw += ch;
      }
    };
    stdin.on("data", onData);
  });
}

/** Shows an API problem: its detail, then each field it names. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    const p = err.problem;
    if (!p) return `runner: ${err.message}\n`;
    let text = `runner: ${p.detail ?? p.title ?? err.message} (${p.status ?? err.status}${p.title ? ` ${p.title}` : ""})\n`;
    for (const e of p.errors ?? []) text += `  ${e.field}: ${e.message}\n`;
    if (err.status === 401) text += "  (runner login again?)\n";
    return text;
  }
  return `runner: ${(err as Error).message}\n`;
}

/** Runs the CLI; answers the exit code. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(io, (c) => (code = c));
  if (argv.length === 0) {
    program.outputHelp();
    return EXIT.USAGE;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    io.err(describeError(err));
    return err instanceof UsageError ? EXIT.USAGE : EXIT.ERROR;
  }
  return code;
}
