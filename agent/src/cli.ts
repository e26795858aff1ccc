// The `runner-agent` command: register, run.
import { Command, CommanderError, Option } from "commander";
import { chmod, mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { Agent, EXIT } from "./agent.ts";
import { ApiClient, ApiError } from "./api-client.ts";
import { ConfigError, defaultConfigPath, readConfigFile, resolveSettings, SETTINGS, writeConfigFile, type ConfigFile, type SettingName } from "./config.ts";
import { createLogger, type LogFormat, type Logger, type LogLevel } from "./log.ts";
import { checkTools } from "./preflight.ts";
import { Backoff, sleep } from "./retry.ts";
import { VERSION } from "./version.ts";
import { chooseIsolation, defaultUidBase, ensureSlotUsers, probeIsolation, untraversableAncestors, type IsolationSupport } from "./sandbox.ts";
import { agentIdOf, claimWorkDir, defaultStateDir } from "./state.ts";
import { prepareWorkRoot } from "./workspace.ts";
import type { AgentMetrics } from "./metrics.ts";
import { STATE_DIR, systemdUnit } from "./service.ts";
import { spawnSync } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

const defaultIO: CliIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
};

const EXIT_CODES = `Exit codes:
  0  stopped cleanly (every execution finished or was handed back)
  1  unexpected error, or the API could not be reached while registering
  2  invalid usage or configuration (the message names the setting)
  3  the API rejected the agent: credential revoked or unknown, registration refused
  4  shut down after the grace period: running executions were stopped (STOPPED)
  5  shut down with a second signal or after the stop timeout: executions were killed (KILLED)
  6  the isolation asked for (or that a shared-pool agent needs) is not available here
     (runner-agent doctor says why)`;

function opt(name: SettingName, flags: string, extra = ""): Option {
  const s = SETTINGS[name];
  return new Option(flags, `${s.describe}${extra} [env: ${s.env}]`);
}

function loggerFor(settings: { logFormat?: LogFormat; logLevel?: LogLevel }, io: CliIO): Logger {
  return createLogger({ format: settings.logFormat ?? "text", level: settings.logLevel ?? "info", write: (l) => io.err(l + "\n") });
}

export function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command();
  const configHelp = ` (default: $XDG_CONFIG_HOME/runner-agent/config.json, here ${defaultConfigPath(io.env)})`;
  program
    .name("runner-agent")
    .description(
      "Runs Ansible work for Runner on this machine. The agent connects out to the Runner API over " +
        "HTTPS (nothing connects in), leases executions, runs ansible-playbook and streams the results back.\n\n" +
        "Register the agent once with a registration token (POST /minions/{account}/tokens), " +
        "then keep `runner-agent run` running, as a service.",
    )
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help (also: runner-agent help <command>)")
    .showHelpAfterError("(run runner-agent --help for usage)")
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride()
    .addHelpText(
      "after",
      `
Examples:
  runner-agent register --url https://runner.example.com --token rrt_... --name build-01 --location dc1
  runner-agent run --concurrency 2
  RUNNER_CONFIG=/etc/runner-agent.json RUNNER_LOG_FORMAT=json runner-agent run

Every option can also be set with the RUNNER_* environment variable shown next to it, or in the
config file (JSON). A flag wins over the environment, which wins over the file.

${EXIT_CODES}`,
    );

  program
    .command("register")
    .description("exchange a registration token for an agent credential and save it in the config file (0600)")
    .addOption(opt("url", "--url <url>", " (e.g. https://runner.example.com)"))
    .addOption(opt("token", "--token <token>", "; prefer the env variable: flags show in the process list"))
    .addOption(opt("operatorToken", "--operator-token <jwt>", ", instead of --token: registers into the shared pool"))
    .addOption(opt("name", "--name <name>", " (default: this host's name)"))
    .addOption(opt("location", "--location <location>", " of this agent's network (routes jobs with that location here)"))
    .addOption(opt("concurrency", "--concurrency <n>", " (default 1)"))
    .addOption(opt("config", "--config <file>", configHelp))
    .addOption(opt("force", "--force", " already in the config file"))
    .addOption(opt("logFormat", "--log-format <format>", ": text or json"))
    .addOption(opt("logLevel", "--log-level <level>", ": debug, info, warn or error"))
    .addHelpText("after", `\nExample:\n  RUNNER_TOKEN=rrt_... runner-agent register --url https://runner.example.com --location dc1\n`)
    .action(async (flags: Record<string, unknown>) => setExit(await registerCommand(flags, io)));

  program
    .command("run")
    .description("take work from the API and run it until stopped (SIGTERM/SIGINT: finish up, a second signal: kill)")
    .addOption(opt("config", "--config <file>", configHelp))
    .addOption(opt("url", "--url <url>", " (default: the registered one)"))
    .addOption(opt("concurrency", "--concurrency <n>", " (default: as registered, else 1)"))
    .addOption(opt("workDir", "--work-dir <dir>", " (default: <state dir>/work)"))
    .addOption(opt("stateDir", "--state-dir <dir>", " (default: /var/lib/runner-agent/<agent id> as root, else $XDG_STATE_HOME/runner-agent/<agent id>)"))
    .addOption(opt("shutdownGrace", "--shutdown-grace <seconds>", " before they are stopped (default 60)"))
    .addOption(opt("hostKeyChecking", "--host-key-checking <mode>", ": off (default) or strict (known hosts only)"))
    .addOption(opt("knownHosts", "--known-hosts <file>", " (default: ~/.ssh/known_hosts)"))
    .addOption(opt("ansiblePlaybook", "--ansible-playbook <path>", " (default: ansible-playbook on PATH)"))
    .addOption(opt("once", "--once", ", e.g. for ephemeral agents"))
    .addOption(opt("isolation", "--isolation <level>", " (default: sandbox where available, else uid with a warning)"))
    .addOption(opt("uidBase", "--uid-base <uid>", " (default: derived from --work-dir)"))
    .addOption(opt("metricsListen", "--metrics-listen <host:port>", ""))
    .addOption(opt("logFormat", "--log-format <format>", ": text or json"))
    .addOption(opt("logLevel", "--log-level <level>", ": debug, info, warn or error"))
    .addHelpText(
      "after",
      `
Register first (runner-agent register --help). The credential comes from the config file, or
from RUNNER_CREDENTIAL (with RUNNER_URL) when there is none; it is never taken as a flag. Give the
config file's path with RUNNER_CONFIG (or keep the default path) rather than --config.

Isolation (runner-agent doctor tells what this host supports):
  sandbox  bubblewrap: the playbook sees only the system, read-only, and its own workspace; not
           the agent's files, processes or environment; with a root agent, as a user per slot
  uid      a user per slot only (root agent): file modes protect the agent and other runs
  none     as the agent's own user: for trusted playbooks only
A shared-pool agent runs only with the sandbox and a user per slot.

On SIGTERM or SIGINT the agent takes no new work, hands back executions that have not started,
and gives running ones --shutdown-grace seconds before it stops them; a second signal kills them.

${EXIT_CODES}
`,
    )
    .action(async (flags: Record<string, unknown>) => setExit(await runCommand(flags, io)));

  program
    .command("doctor")
    .description("say which isolation this host supports (and why not), and what `run` would use")
    .addOption(opt("config", "--config <file>", configHelp))
    .addOption(opt("workDir", "--work-dir <dir>", " (default: <state dir>/work)"))
    .addOption(opt("stateDir", "--state-dir <dir>", " (default: /var/lib/runner-agent/<agent id> as root, else $XDG_STATE_HOME/runner-agent/<agent id>)"))
    .addOption(opt("isolation", "--isolation <level>", ""))
    .addOption(opt("uidBase", "--uid-base <uid>", ""))
    .addOption(opt("concurrency", "--concurrency <n>", ""))
    .addOption(opt("ansiblePlaybook", "--ansible-playbook <path>", ""))
    .action(async (flags: Record<string, unknown>) => setExit(await doctorCommand(flags, io)));

  program
    .command("install-service")
    .description("write a systemd unit that keeps `runner-agent run` running (to stdout, or to --output)")
    .option("--output <file>", "write the unit here (e.g. /etc/systemd/system/runner-agent.service) instead of stdout")
    .option(
      "--user <name>",
      "run the agent as this unprivileged user (an account's agent); default: root (needed by a shared-pool agent, and gives each slot a user of its own)",
    )
    .addOption(opt("config", "--config <file>", ` (default: RUNNER_CONFIG, else ${defaultConfigPath(io.env)})`))
    .addOption(opt("workDir", "--work-dir <dir>", ` (default: ${STATE_DIR}/work, under the state directory)`))
    .addOption(opt("isolation", "--isolation <level>", " (default: sandbox)"))
    .addOption(opt("concurrency", "--concurrency <n>", " (default: as registered)"))
    .addOption(opt("metricsListen", "--metrics-listen <host:port>", ""))
    .addOption(opt("shutdownGrace", "--shutdown-grace <seconds>", " (default 60; the unit's stop timeout is this plus 60)"))
    .addHelpText(
      "after",
      `
Register first, with the config file where the service will read it, then install the unit:
  export RUNNER_CONFIG=${STATE_DIR}/config.json
  RUNNER_TOKEN=rrt_... runner-agent register --url https://runner.example.com
  runner-agent install-service --output /etc/systemd/system/runner-agent.service
  systemctl daemon-reload && systemctl enable --now runner-agent

The unit runs "runner-agent run --isolation sandbox" with RUNNER_CONFIG by environment, its
workspaces under ${STATE_DIR}/work (StateDirectory, owned by --user when given), restarts it on
failure (not on exit codes 2, 3 and 6, which a restart does not fix), and stops it with SIGTERM
to the agent alone so running executions can finish (--shutdown-grace).
`,
    )
    .action(async (flags: Record<string, unknown>) => setExit(await installServiceCommand(flags, io)));

  return program;
}

/** `runner-agent install-service`: the unit on stdout, or written to --output. */
export async function installServiceCommand(flags: Record<string, unknown>, io: CliIO): Promise<number> {
  let file, s;
  const problems: string[] = [];
  try {
    file = await loadFile(flags, io);
    s = resolveSettings(["workDir", "isolation", "concurrency", "metricsListen", "shutdownGrace"], flags, io.env, {}, [], problems);
    const user = flags.user === undefined ? undefined : String(flags.user).trim();
    if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}\$?$/i.test(user)) problems.push(`--user must be a user name (got ${JSON.stringify(user)})`);
    if (user && user !== "root" && file.data.shared)
      problems.push(
        `${file.path} holds a shared-pool agent, which must run as root (it runs every account's playbooks, each as a user of its own): leave out --user`,
      );
    if (problems.length) throw new ConfigError(problems);
    const workDir = s.workDir ?? undefined;
    const unit = systemdUnit({
      config: resolve(file.path),
      workDir,
      user: user && user !== "root" ? user : undefined,
      isolation: s.isolation ?? "sandbox",
      concurrency: s.sources.concurrency === "default" ? undefined : s.concurrency,
      metricsListen: s.metricsListen ?? undefined,
      shutdownGrace: s.shutdownGrace ?? 60,
    });
    if (!file.exists)
      io.err(`runner-agent: note: there is no config file at ${file.path} yet: register there first (RUNNER_CONFIG=${file.path} runner-agent register …)\n`);
    else if (user && user !== "root") {
      const uid = spawnSync("id", ["-u", user], { encoding: "utf8" });
      if (uid.status !== 0)
        io.err(`runner-agent: note: there is no user ${user} yet: useradd --system --home-dir ${STATE_DIR} --shell /usr/sbin/nologin ${user}\n`);
      else if (statSync(file.path).uid !== Number(uid.stdout.trim()) && !file.path.startsWith(`${STATE_DIR}/`)) {
        io.err(`runner-agent: note: ${file.path} must belong to ${user} (chown ${user} ${file.path}), who runs the agent\n`);
      }
    }
    if (typeof flags.output === "string" && flags.output) {
      writeFileSync(flags.output, unit, { mode: 0o644 });
      io.err(
        `Wrote ${flags.output}. Now: systemctl daemon-reload && systemctl enable --now ${flags.output
          .split("/")
          .pop()!
          .replace(/\.service$/, "")}\n`,
      );
    } else io.out(unit);
    return EXIT.OK;
  } catch (err) {
    return configProblem(err, io, flags, file?.data);
  }
}

/** Runs the CLI; answers the exit code. */
export async function main(argv: string[], io: CliIO = defaultIO): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(io, (c) => (code = c));
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exitCode 0; usage errors with 1, which we report as 2.
      return err.exitCode === 0 ? EXIT.OK : EXIT.CONFIG;
    }
    io.err(`runner-agent: ${(err as Error).message}\n`);
    return EXIT.ERROR;
  }
  if (argv.length === 0) {
    program.outputHelp();
    return EXIT.CONFIG;
  }
  return code;
}

async function loadFile(flags: Record<string, unknown>, io: CliIO) {
  const { config } = resolveSettings(["config"], flags, io.env, {});
  const file = await readConfigFile(config!);
  return { path: config!, ...file };
}

function configProblem(err: unknown, io: CliIO, flags: Record<string, unknown>, file?: ConfigFile): number {
  if (err instanceof ConfigError) {
    // With JSON logs asked for (and that setting itself valid), the problem is one JSON line too.
    let json = false;
    try {
      json = resolveSettings(["logFormat"], flags, io.env, file ?? {}).logFormat === "json";
    } catch {
      json = false;
    }
    if (json) loggerFor({ logFormat: "json" }, io).error("invalid configuration", { problems: err.problems });
    else io.err(`runner-agent: ${err.message}\n`);
    return EXIT.CONFIG;
  }
  throw err;
}

export async function registerCommand(flags: Record<string, unknown>, io: CliIO): Promise<number> {
  let file, s;
  try {
    file = await loadFile(flags, io);
    // The file is the destination here; what it already holds (a re-registration with --force)
    // fills in what neither flags nor environment give. Never its credential.
    const problems: string[] = [];
    const { url, name, location, concurrency, logFormat, logLevel } = file.data;
    s = resolveSettings(
      ["url", "token", "operatorToken", "name", "location", "concurrency", "force", "logFormat", "logLevel"],
      flags,
      io.env,
      { url, name, location, concurrency, logFormat, logLevel },
      ["url"],
      problems,
    );
    if (!s.token && !s.operatorToken)
      problems.push("--token (or RUNNER_TOKEN) is required: the registration token; or --operator-token for a shared-pool agent");
    if (s.token && s.operatorToken) problems.push("give either --token or --operator-token, not both");
    if (file.data.credential && !s.force) {
      problems.push(`${file.path} already holds a registration (agent ${file.data.agentId ?? "?"}): use --force to replace it, or --config for another file`);
    }
    if (problems.length) throw new ConfigError(problems);
  } catch (err) {
    return configProblem(err, io, flags, file?.data);
  }
  const log = loggerFor(s, io);
  for (const w of file.warnings) log.warn(w);
  const client = new ApiClient({ url: s.url!, version: VERSION });
  const body = {
    ...(s.token ? { token: s.token } : {}),
    name: s.name!,
    location: s.location ?? null,
    version: VERSION,
    hostname: hostname(),
    concurrency: s.concurrency ?? 1,
  };
  const backoff = new Backoff({ initialMs: 500, maxMs: 4000 });
  for (let attempt = 1; ; attempt++) {
    try {
      const a = await client.register(body, s.operatorToken ?? undefined);
      const data: ConfigFile = {
        url: s.url!,
        agentId: a.agentId,
        credential: a.credential,
        accountAlias: a.accountAlias ?? null,
        shared: !!a.shared,
        name: s.name!,
        location: a.location ?? s.location ?? null,
        concurrency: s.concurrency ?? 1,
        leaseTtlMs: a.leaseTtlMs,
        heartbeatIntervalMs: a.heartbeatIntervalMs,
        pollWaitMs: a.pollWaitMs,
        registeredAt: Date.now(),
      };
      await writeConfigFile(file.path, data);
      const scope = a.shared ? "the shared pool" : `account ${a.accountAlias}`;
      const where = data.location ? `, location ${data.location}` : "";
      log.info("agent registered", { agentId: a.agentId, account: a.accountAlias ?? "(shared)", location: data.location ?? undefined, config: file.path });
      io.out(
        `Registered agent ${data.name} (${a.agentId}) for ${scope}${where}.\nCredential saved in ${file.path}.\nStart it with: runner-agent run${flags.config ? ` --config ${file.path}` : ""}\n`,
      );
      return EXIT.OK;
    } catch (err) {
      const e = ApiError.from(err);
      if (!e.retryable) {
        const why =
          e.status === 401 || e.status === 403
            ? s.operatorToken
              ? "the API refused the operator token (expired, or not an admin token for all accounts)"
              : "the API refused the registration token (revoked, or mistyped)"
            : `the API refused the registration: ${e.problem?.detail ?? e.message}`;
        log.error(why, { status: e.status });
        return EXIT.REJECTED;
      }
      if (attempt >= 4) {
        log.error(`could not reach the API at ${s.url}`, { error: e.message });
        return EXIT.ERROR;
      }
      const delay = e.retryAfterMs ?? backoff.next();
      log.warn("registration failed; retrying", { error: e.message, retryInMs: delay });
      await sleep(delay);
    }
  }
}

export async function runCommand(flags: Record<string, unknown>, io: CliIO): Promise<number> {
  let file, s;
  try {
    file = await loadFile(flags, io);
    const problems: string[] = [];
    s = resolveSettings(
      [
        "url",
        "credential",
        "concurrency",
        "workDir",
        "stateDir",
        "shutdownGrace",
        "hostKeyChecking",
        "knownHosts",
        "ansiblePlaybook",
        "once",
        "isolation",
        "uidBase",
        "metricsListen",
        "logFormat",
        "logLevel",
      ],
      flags,
      io.env,
      file.data,
      [],
      problems,
    );
    if (!s.credential && !problems.some((p) => p.includes("RUNNER_CREDENTIAL"))) {
      problems.push(
        file.exists
          ? `${file.path} holds no credential: register the agent first (runner-agent register --url … --token …)`
          : `no config file at ${file.path}: register the agent first (runner-agent register --url … --token …), or give --config, or set RUNNER_CREDENTIAL and RUNNER_URL`,
      );
    }
    if (!s.url && !problems.some((p) => /--url|RUNNER_URL|"url"/.test(p))) problems.push("--url (or RUNNER_URL) is required: the Runner API base URL");
    if (s.knownHosts && s.hostKeyChecking !== "strict") problems.push("--known-hosts is only used with --host-key-checking strict");
    if (problems.length) throw new ConfigError(problems);
  } catch (err) {
    return configProblem(err, io, flags, file?.data);
  }
  const log = loggerFor(s, io);
  for (const w of file.warnings) log.warn(w);
  // Everything this agent keeps on disk is its own: a state directory per registration.
  const agentId = file.data.agentId ?? agentIdOf(s.credential) ?? "default";
  const { stateDir, workDir } = dirsFor(s, agentId, io.env);
  s.workDir = workDir;
  const choice = chooseIsolation(s.isolation ?? undefined, probeIsolation(s.workDir!), !!file.data.shared);
  if (!choice.ok) {
    log.error(`runner-agent will not run: ${choice.problem}`);
    return EXIT.ISOLATION;
  }
  if (choice.warning) log.warn(choice.warning);
  const uidBase = choice.perSlotUid ? (s.uidBase ?? defaultUidBase(s.workDir!)) : undefined;
  if (choice.level === "uid" && uidBase !== undefined) {
    for (const p of ensureSlotUsers(uidBase, s.concurrency ?? 1)) log.warn(`could not make the slot users system users (ssh needs them): ${p}`);
  }
  try {
    // With slot users the state directory is passed through (0711) on the way to the workspaces.
    await mkdir(stateDir, { recursive: true, mode: uidBase !== undefined ? 0o711 : 0o700 });
    if (uidBase !== undefined) await chmod(stateDir, 0o711);
    await prepareWorkRoot(s.workDir!, { traversable: uidBase !== undefined });
    const blocked = uidBase !== undefined ? untraversableAncestors(s.workDir!) : [];
    if (blocked.length) throw new Error(`the slot users cannot reach it through ${blocked.join(", ")} (chmod o+x, or choose another directory)`);
    const other = await claimWorkDir(s.workDir!, agentId);
    if (other) throw new Error(`it is in use by ${other}: give each agent its own (--work-dir or --state-dir)`);
  } catch (err) {
    return configProblem(new ConfigError([`--work-dir ${s.workDir} cannot hold workspaces: ${(err as Error).message}`]), io, flags, file.data);
  }
  const { tools, problems } = checkTools(s.ansiblePlaybook!);
  if (!tools) {
    for (const p of problems) log.error(p);
    return EXIT.CONFIG;
  }
  // Opt-in metrics: the protocol counters come from the client's fetch, the gauges from the agent.
  // eslint-disable-next-line prefer-const
  let agent: Agent | undefined;
  // prom-client is loaded only then: an agent without metrics does not carry it (resident memory).
  const metrics: AgentMetrics | undefined = s.metricsListen
    ? new (await import("./metrics.ts")).AgentMetrics({ running: () => agent?.running.length ?? 0, uploadBacklog: () => agent?.uploadBacklog ?? 0 })
    : undefined;
  const client = new ApiClient({ url: s.url!, credential: s.credential!, version: VERSION, fetch: metrics?.instrument() });
  agent = new Agent({
    client,
    concurrency: s.concurrency ?? 1,
    pollWaitMs: Math.min(25_000, file.data.pollWaitMs ?? 25_000),
    heartbeatIntervalMs: file.data.heartbeatIntervalMs ?? 5000,
    shutdownGraceMs: (s.shutdownGrace ?? 60) * 1000,
    once: !!s.once,
    // The config file holds the credential: masked inside the sandbox even where a bound tree holds it.
    isolation: { level: choice.level, uidBase, hide: file.exists ? [file.path] : [] },
    stateDir,
    executor: {
      workRoot: s.workDir!,
      ansiblePlaybook: s.ansiblePlaybook!,
      hostKeyChecking: s.hostKeyChecking ?? "off",
      knownHosts: s.knownHosts ?? undefined,
    },
    log,
  });
  log.info("agent started", {
    version: VERSION,
    agentId: file.data.agentId,
    url: s.url,
    concurrency: s.concurrency,
    ansible: tools.ansibleVersion,
    git: tools.gitVersion,
    workDir: s.workDir,
    isolation: choice.level,
    slotUids: uidBase !== undefined ? `${uidBase}-${uidBase + (s.concurrency ?? 1) - 1}` : undefined,
    pid: process.pid,
  });
  if (metrics) {
    try {
      const a = await metrics.listen(s.metricsListen!);
      log.info("serving metrics", { url: `http://${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}/metrics` });
    } catch (err) {
      return configProblem(new ConfigError([`--metrics-listen ${s.metricsListen}: cannot listen there: ${(err as Error).message}`]), io, flags, file.data);
    }
  }
  const removeHandlers = agent.installSignalHandlers();
  try {
    const code = await agent.run();
    log.info("agent stopped", { exitCode: code });
    return code;
  } catch (err) {
    log.error("agent failed", { error: err });
    return EXIT.ERROR;
  } finally {
    removeHandlers();
    await metrics?.close();
  }
}

/** Isolation levels this host supports, with the reasons for those it does not, and run's choice. */
export async function doctorCommand(flags: Record<string, unknown>, io: CliIO): Promise<number> {
  let file, s;
  try {
    file = await loadFile(flags, io);
    s = resolveSettings(["workDir", "stateDir", "isolation", "uidBase", "concurrency", "ansiblePlaybook"], flags, io.env, file.data);
    s.workDir = dirsFor(s, file.data.agentId ?? agentIdOf(io.env.RUNNER_CREDENTIAL) ?? "default", io.env).workDir;
  } catch (err) {
    return configProblem(err, io, flags, file?.data);
  }
  const support: IsolationSupport = probeIsolation(s.workDir!);
  const shared = !!file.data.shared;
  const line = (name: string, r: { ok: boolean; why?: string }) => `  ${name.padEnd(8)} ${r.ok ? "available" : `not available: ${r.why}`}\n`;
  let out = `runner-agent ${VERSION} on ${hostname()}, running as uid ${process.getuid?.() ?? "?"}\n`;
  out += "isolation levels:\n";
  out += line("sandbox", support.sandbox);
  out += line("uid", support.uid);
  out += "  none     always available (playbooks run as the agent's user)\n";
  const { tools, problems } = checkTools(s.ansiblePlaybook!);
  out += tools ? `tools: ansible-core ${tools.ansibleVersion}, git ${tools.gitVersion}\n` : `tools: ${problems.join("; ")}\n`;
  const who = file.exists ? (shared ? "this shared-pool agent" : `this agent of account ${file.data.accountAlias ?? "?"}`) : "an unregistered agent";
  const choice = chooseIsolation(s.isolation ?? undefined, support, shared);
  if (choice.ok) {
    const base = s.uidBase ?? defaultUidBase(s.workDir!);
    const users = choice.perSlotUid ? ` with slot users ${base}-${base + (s.concurrency ?? 1) - 1}` : "";
    out += `${who} would run with isolation ${choice.level}${users}${choice.level === "sandbox" && !choice.perSlotUid ? " (as the agent's own uid: run it as root for a user per slot)" : ""}\n`;
    if (choice.warning) out += `warning: ${choice.warning}\n`;
  } else out += `${who} would not run: ${choice.problem}\n`;
  io.out(out);
  return choice.ok && tools ? EXIT.OK : choice.ok ? EXIT.CONFIG : EXIT.ISOLATION;
}

/** The state directory (per agent id) and the work directory, defaulting to <state dir>/work. */
function dirsFor(s: { workDir?: string | null; stateDir?: string | null }, agentId: string, env: NodeJS.ProcessEnv) {
  const stateDir = s.stateDir ?? defaultStateDir(agentId, env);
  return { stateDir, workDir: s.workDir ?? join(stateDir, "work") };
}
