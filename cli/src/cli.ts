// The `runner` command: Runner's API for people (tables, colours on a terminal) and for scripts
// and CI (--json, exit codes that follow an execution's outcome). One module per command group
// in commands/; what they share is in core.ts.
import { Command, CommanderError } from "commander";
import { registerAgents } from "./commands/agents.ts";
import { registerExecutions } from "./commands/executions.ts";
import { registerJobs } from "./commands/jobs.ts";
import { registerLogin } from "./commands/login.ts";
import { registerSchedules } from "./commands/schedules.ts";
import { actFor, describeError, EXIT, EXIT_CODES, type Io, processIo, UsageError } from "./core.ts";
import { VERSION } from "./version.ts";

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

  const act = actFor(io, setExit);
  registerLogin(program, io, setExit);
  registerJobs(program, act);
  registerExecutions(program, act);
  registerSchedules(program, act);
  registerAgents(program, act);
  return program;
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
