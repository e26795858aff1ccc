// `runner-agent doctor`: which isolation this host supports, and what `run` would use.
import { hostname } from "node:os";
import { EXIT } from "../agent.ts";
import { resolveSettings } from "../config.ts";
import { checkTools } from "../preflight.ts";
import { VERSION } from "../version.ts";
import { chooseIsolation, defaultUidBase, probeIsolation, type IsolationSupport } from "../sandbox.ts";
import { agentIdOf } from "../state.ts";
import { type CliIO, configProblem, dirsFor, loadFile } from "./common.ts";

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
