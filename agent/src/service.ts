// `runner-agent install-service`: a systemd unit that keeps `runner-agent run` running.
import { fileURLToPath } from "node:url";
import { VERSION } from "./version.ts";

export interface ServiceOptions {
  /** Absolute path of the config file (given to the agent by environment, RUNNER_CONFIG). */
  config: string;
  /** Default: <state dir>/work. */
  workDir?: string;
  /** Run as this (unprivileged) user; undefined: root, which gives each slot a user of its own. */
  user?: string;
  isolation: string;
  concurrency?: number;
  metricsListen?: string;
  shutdownGrace: number;
  /** The node binary and the agent's bin script (default: the ones running now). */
  node?: string;
  bin?: string;
}

/** The directory systemd makes for the service (StateDirectory=runner-agent). */
export const STATE_DIR = "/var/lib/runner-agent";

/** Quotes one word of a systemd command line or assignment when it needs it. */
function word(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export function agentBinPath(): string {
  // One level above src/ and dist/ alike.
  return fileURLToPath(new URL("../bin/runner-agent.mjs", import.meta.url));
}

export function systemdUnit(o: ServiceOptions): string {
  const node = o.node ?? process.execPath;
  const bin = o.bin ?? agentBinPath();
  // The state directory (what the agent holds; the workspaces under work/) is the service's own.
  const args = [node, bin, "run", "--isolation", o.isolation, "--state-dir", STATE_DIR];
  if (o.workDir) args.push("--work-dir", o.workDir);
  if (o.concurrency) args.push("--concurrency", String(o.concurrency));
  if (o.metricsListen) args.push("--metrics-listen", o.metricsListen);
  const lines = [
    `# Written by \`runner-agent install-service\` (runner-agent ${VERSION}). Install it with:`,
    `#   runner-agent install-service --output /etc/systemd/system/runner-agent.service`,
    `#   systemctl daemon-reload && systemctl enable --now runner-agent`,
    `[Unit]`,
    `Description=Runner agent: runs Ansible work for Runner`,
    `Wants=network-online.target`,
    `After=network-online.target`,
    ``,
    `[Service]`,
    `Type=exec`,
  ];
  if (o.user) {
    lines.push(`# An account's agent as a dedicated user: each execution runs in the bubblewrap sandbox as this user.`, `User=${word(o.user)}`);
  } else {
    lines.push(`# As root: each execution runs in the bubblewrap sandbox as an unprivileged user of its own slot.`);
  }
  lines.push(
    `# The config file (with the agent's credential) by environment, never on the command line.`,
    `Environment=${word(`RUNNER_CONFIG=${o.config}`)}`,
    `ExecStart=${args.map(word).join(" ")}`,
  );
  // Made (and owned by User=) by systemd; slot users pass through to their workspaces (0711).
  lines.push(`StateDirectory=runner-agent`, `StateDirectoryMode=0711`);
  lines.push(
    `Restart=on-failure`,
    `RestartSec=5s`,
    `# 2: bad configuration, 3: credential refused, 6: no sandbox here (runner-agent doctor): a restart will not help.`,
    `RestartPreventExitStatus=2 3 6`,
    `# 4 and 5: stopped by systemd with executions that had to be stopped or killed.`,
    `SuccessExitStatus=4 5`,
    `# SIGTERM to the agent alone: it takes no new work and gives running executions`,
    `# --shutdown-grace seconds, then stops and kills them; whatever is left after that is killed.`,
    `KillMode=mixed`,
    `TimeoutStopSec=${o.shutdownGrace + 60}`,
    ``,
    `[Install]`,
    `WantedBy=multi-user.target`,
    ``,
  );
  return lines.join("\n");
}
