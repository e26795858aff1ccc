// The `runner-agent` command: register, run, doctor, install-service. Each command's work is in
// commands/, loaded when that command runs (a running agent does not carry the others: resident
// memory); this module declares them and their options.
import type { CliIO } from "./commands/common.ts";
import { Command, CommanderError, Option } from "commander";
import { EXIT } from "./agent.ts";
import { defaultConfigPath, SETTINGS, type SettingName } from "./config.ts";
import { VERSION } from "./version.ts";
import { STATE_DIR } from "./service.ts";

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
    .action(async (flags: Record<string, unknown>) => setExit(await (await import("./commands/register.ts")).registerCommand(flags, io)));

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
    .action(async (flags: Record<string, unknown>) => setExit(await (await import("./commands/run-agent.ts")).runCommand(flags, io)));

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
    .action(async (flags: Record<string, unknown>) => setExit(await (await import("./commands/doctor.ts")).doctorCommand(flags, io)));

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
    .action(async (flags: Record<string, unknown>) => setExit(await (await import("./commands/install-service.ts")).installServiceCommand(flags, io)));

  return program;
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
