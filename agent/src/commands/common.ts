// What the runner-agent commands share: their terminal, their logger, the config file and its problems.
import { EXIT } from "../agent.ts";
import { ConfigError, readConfigFile, resolveSettings, type ConfigFile } from "../config.ts";
import { createLogger, type LogFormat, type Logger, type LogLevel } from "../log.ts";
import { join } from "node:path";
import { defaultStateDir } from "../state.ts";

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
}

export function loggerFor(settings: { logFormat?: LogFormat; logLevel?: LogLevel }, io: CliIO): Logger {
  return createLogger({ format: settings.logFormat ?? "text", level: settings.logLevel ?? "info", write: (l) => io.err(l + "\n") });
}

export async function loadFile(flags: Record<string, unknown>, io: CliIO) {
  const { config } = resolveSettings(["config"], flags, io.env, {});
  const file = await readConfigFile(config!);
  return { path: config!, ...file };
}

export function configProblem(err: unknown, io: CliIO, flags: Record<string, unknown>, file?: ConfigFile): number {
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

export /** The state directory (per agent id) and the work directory, defaulting to <state dir>/work. */
function dirsFor(s: { workDir?: string | null; stateDir?: string | null }, agentId: string, env: NodeJS.ProcessEnv) {
  const stateDir = s.stateDir ?? defaultStateDir(agentId, env);
  return { stateDir, workDir: s.workDir ?? join(stateDir, "work") };
}
