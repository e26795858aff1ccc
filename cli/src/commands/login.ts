// `runner login` and `runner logout`: a service account's token kept per profile (0600).
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { Api } from "../api.ts";
import type { LoginAnswer } from "../api-types.ts";
import { EXIT, type Globals, type Io, profileName, UsageError } from "../core.ts";
import { when } from "../output.ts";
import { profilePath, removeProfile, writeProfile, type Profile } from "../profile.ts";

export function registerLogin(program: Command, io: Io, setExit: (code: number) => void): void {
  program
    .command("login")
    .description("log in as a service account and keep its token (0600) for the next commands")
    .requiredOption("--url <url>", "the Runner API, e.g. https://runner.example.com")
    .requiredOption("--username <name>", "the service account's username")
    .option("--password-stdin", "read the password from standard input (else RUNNER_PASSWORD, else a prompt)")
    .action(async (opts: { url: string; username: string; passwordStdin?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals() as Globals;
      const profile = profileName(cmd, io);
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
      const profile = profileName(cmd, io);
      io.err((await removeProfile(io.env, profile)) ? `Logged out (removed ${profilePath(io.env, profile)})\n` : "Not logged in\n");
      setExit(EXIT.OK);
    });
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
