// `runner-agent install-service`: a systemd unit that keeps the agent running.
import { EXIT } from "../agent.ts";
import { ConfigError, resolveSettings } from "../config.ts";
import { STATE_DIR, systemdUnit } from "../service.ts";
import { spawnSync } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { type CliIO, configProblem, loadFile } from "./common.ts";

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
