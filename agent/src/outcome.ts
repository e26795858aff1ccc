// How a run ends: ansible-playbook's exit mapped to a status and a reason, and what a stop, kill,
// abandon or hand-back makes of that. Pure.
import { sep } from "node:path";
import type { HostStats, StatusReport, TerminalStatus } from "./types.ts";

export interface RunOutcome {
  /** The terminal status to report; null when the run was abandoned or handed back. */
  status: TerminalStatus | null;
  reason?: string;
  detail?: string;
  exitCode?: number | null;
  hostStats?: Record<string, HostStats>;
  failedHosts?: string[];
  abandoned?: boolean;
  handedBack?: boolean;
}

/** What the run was asked to do besides finishing: stop or kill (with the reason), abandon, hand back. */
export type Requested = null | { kind: "stop" | "kill"; reason: string } | { kind: "abandon" | "handback"; reason?: undefined };

export interface AnsibleExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The playbook_on_start event came. */
  started: boolean;
  /** The playbook_on_stats counters, when they came. */
  stats: Record<string, HostStats> | null;
  /** Hosts seen failing or unreachable in events (used when no stats came). */
  failedSeen: Iterable<string>;
  /** Ansible's own error message, if it printed one. */
  ansibleError: string;
}

/** ansible-playbook's exit as the run's outcome (exit codes: 0 ok, 2 failed hosts, 4 unreachable). */
export function exitOutcome(x: AnsibleExit): RunOutcome {
  const { code, signal } = x;
  const exitCode = code;
  if (!x.started) {
    if (code === 0) return { status: "SUCCESS", exitCode };
    return {
      status: "INIT_FAILURE",
      reason: "playbook_invalid",
      detail: x.ansibleError || `ansible-playbook exited with ${code ?? signal} before the playbook started`,
      exitCode,
    };
  }
  const hostStats = x.stats ?? undefined;
  const failedHosts = x.stats
    ? Object.entries(x.stats)
        .filter(([, s]) => s.failed > 0 || s.unreachable > 0)
        .map(([h]) => h)
        .sort()
    : [...x.failedSeen].sort();
  if (code === 0) return { status: "SUCCESS", exitCode, hostStats, failedHosts };
  const unreachable = hostStats
    ? Object.entries(hostStats)
        .filter(([, s]) => s.unreachable > 0)
        .map(([h]) => h)
    : [];
  const failed = failedHosts.filter((h) => !unreachable.includes(h));
  let reason = "ansible_error";
  if (code === 2) reason = "playbook_failed";
  else if (code === 4) reason = "hosts_unreachable";
  else if (signal) reason = "ansible_killed";
  const parts: string[] = [];
  if (failed.length) parts.push(`failed on ${failed.join(", ")}`);
  if (unreachable.length) parts.push(`unreachable: ${unreachable.join(", ")}`);
  if (signal) parts.push(`ansible-playbook was killed by ${signal}, not by Runner (did the machine run out of memory?)`);
  else if (!parts.length) parts.push(x.ansibleError || `ansible-playbook exited with ${code}`);
  return { status: "FAILURE", reason, detail: parts.join("; "), exitCode, hostStats, failedHosts };
}

/** Stop, kill, abandon and hand-back decide the outcome whatever the run itself ended with. */
export function overrideByRequest(req: Requested, r: RunOutcome): RunOutcome {
  if (!req) return r;
  if (req.kind === "abandon") return { status: null, abandoned: true };
  if (req.kind === "handback") return { status: null, handedBack: true };
  const status: TerminalStatus = req.kind === "kill" ? "KILLED" : "STOPPED";
  const out: RunOutcome = { status, reason: req.reason, exitCode: r.exitCode };
  if (r.hostStats) out.hostStats = r.hostStats;
  return out;
}

/** A bug or an unexpected failure of the machine still ends the execution, with the reason. */
export function unexpectedOutcome(err: unknown, started: boolean): RunOutcome {
  const detail = `runner-agent: ${String((err as Error)?.message ?? err)}`;
  return started ? { status: "FAILURE", reason: "agent_error", detail } : { status: "INIT_FAILURE", reason: "workspace_failed", detail };
}

/** The final status report of an outcome; null when there is nothing to report. */
export function finalReport(r: RunOutcome): StatusReport | null {
  if (!r.status) return null;
  const report: StatusReport = { status: r.status };
  if (r.reason) report.reason = r.reason;
  if (r.detail) report.detail = r.detail;
  if (r.exitCode !== undefined) report.exitCode = r.exitCode;
  if (r.hostStats) report.hostStats = r.hostStats;
  if (r.failedHosts) report.failedHosts = r.failedHosts;
  return report;
}

/** Ansible's own error message (ERROR! …) from the end of its stderr, workspace paths made relative to the project. */
export function ansibleError(stderrTail: string, ws: { project: string; dir: string }): string {
  const text = stderrTail
    .split(ws.project + sep)
    .join("")
    .split(ws.dir)
    .join("<workspace>");
  const i = text.search(/ERROR!|\[ERROR\]/);
  const msg = (i >= 0 ? text.slice(i) : text).trim();
  return msg.length > 2000 ? `${msg.slice(0, 2000)} …` : msg;
}
