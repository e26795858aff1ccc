// What every `runner` command shares: exit codes, the terminal, the logged-in context, printing.
import type { Command } from "commander";
import { Api, ApiError } from "./api.ts";
import { colours, when, type Colours } from "./output.ts";
import { readProfile, type Profile } from "./profile.ts";

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
export const TERMINAL = Object.keys(OUTCOME_EXIT);

export const EXIT_CODES = `Exit codes:
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

export const processIo: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  env: process.env,
  stdoutIsTTY: !!process.stdout.isTTY,
  stdinIsTTY: !!process.stdin.isTTY,
};

export class UsageError extends Error {}

export interface Globals {
  profile?: string;
  account?: string;
  json?: boolean;
  color?: boolean;
}

/** What every command that talks to the API needs. */
export interface Ctx {
  api: Api;
  account: string;
  json: boolean;
  c: Colours;
  io: Io;
  profile: string;
}

export const enc = encodeURIComponent;

/** The profile a command uses: --profile, else RUNNER_PROFILE, else "default". */
export const profileName = (cmd: Command, io: Io) => (cmd.optsWithGlobals() as Globals).profile ?? io.env.RUNNER_PROFILE ?? "default";

/**
 * Wraps a command's function: Commander calls an action with its arguments, its options, then the
 * command itself; the function answers its exit code, or nothing for EXIT.OK.
 */
export type Act = <A extends unknown[]>(
  fn: (ctx: Ctx, ...args: A) => Promise<number | undefined> | Promise<void>,
) => (...args: [...A, Command]) => Promise<void>;

export function actFor(io: Io, setExit: (code: number) => void): Act {
  return <A extends unknown[]>(fn: (ctx: Ctx, ...args: A) => Promise<number | undefined> | Promise<void>) =>
    async (...args: [...A, Command]) => {
      const cmd = args[args.length - 1] as Command;
      const ctx = await context(cmd, io);
      setExit((await fn(ctx, ...(args.slice(0, -1) as A))) ?? EXIT.OK);
    };
}

export async function context(cmd: Command, io: Io): Promise<Ctx> {
  const g = cmd.optsWithGlobals() as Globals;
  const profile = profileName(cmd, io);
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

export function print(ctx: Ctx, value: unknown, human: () => string): void {
  ctx.io.out(ctx.json ? JSON.stringify(value, null, 2) + "\n" : human());
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
