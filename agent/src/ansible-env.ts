// The environment of a run's processes and ansible-playbook's ssh arguments. Pure: what the run
// gets is decided here from the agent's settings and the workspace, nothing is started.
import { TRACKING_ENV } from "./process-group.ts";
import { isolatedEnv, type IsolationLevel } from "./sandbox.ts";
import type { Workspace } from "./workspace.ts";

export type HostKeyChecking = "off" | "strict";

/** The environment of child processes: no agent secrets (a playbook could read them with lookup('env')). */
export function childEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) {
    if (k.startsWith("RUNNER_") || k === TRACKING_ENV) continue;
    env[k] = v;
  }
  // ansible-core refuses to start without a UTF-8 locale (systemd services often have none).
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || "";
  if (!/utf-?8/i.test(locale)) env.LC_ALL = "C.UTF-8";
  return env;
}

/** The base environment of a run's git and ansible-playbook: an isolated run gets what it needs, nothing of the agent's (HOME included). */
export function runEnv(level: IsolationLevel, base: NodeJS.ProcessEnv | undefined, home: string): NodeJS.ProcessEnv {
  return level === "none" ? childEnv(base) : isolatedEnv(childEnv(base), home);
}

/** ANSIBLE_SSH_ARGS: the user's (or Ansible's default multiplexing), then the host key policy. */
export function sshArgs(base: NodeJS.ProcessEnv, hostKeyChecking: HostKeyChecking, knownHosts?: string): string {
  const args = [base.ANSIBLE_SSH_ARGS || "-C -o ControlMaster=auto -o ControlPersist=60s"];
  if (hostKeyChecking === "off") args.push("-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR");
  else if (knownHosts) args.push(`-o UserKnownHostsFile=${knownHosts}`);
  return args.join(" ");
}

export interface AnsibleEnvOptions {
  base: NodeJS.ProcessEnv;
  /** Marks every process of the run (process-group.ts finds leftovers by it). */
  trackingId: string;
  /** Directory holding runner_events.py. */
  callbackDir: string;
  hostKeyChecking: HostKeyChecking;
  knownHosts?: string;
  ws: Pick<Workspace, "cp" | "tmp">;
  /**
   * Under uid isolation, the slot's own uid: when the agent dies, the callback plugin also kills
   * every process of that uid (what left the process group). Never set for a shared uid.
   */
  lifelineUid?: number;
}

/** ansible-playbook's fd whose other end only the agent holds: EOF there means the agent is gone. */
export const LIFELINE_FD = 4;

/** ansible-playbook's environment: our callback plugin on fd 3 (its lifeline on fd 4), no colours, ssh sockets and temp files in the workspace. */
export function ansibleEnv(o: AnsibleEnvOptions): NodeJS.ProcessEnv {
  const { base, callbackDir, ws } = o;
  const env: NodeJS.ProcessEnv = {
    ...base,
    [TRACKING_ENV]: o.trackingId,
    ANSIBLE_STDOUT_CALLBACK: "runner_events",
    ANSIBLE_CALLBACK_PLUGINS: base.ANSIBLE_CALLBACK_PLUGINS ? `${callbackDir}:${base.ANSIBLE_CALLBACK_PLUGINS}` : callbackDir,
    RUNNER_EVENTS_FD: "3",
    RUNNER_LIFELINE_FD: String(LIFELINE_FD),
    ...(o.lifelineUid !== undefined && o.lifelineUid > 0 ? { RUNNER_LIFELINE_UID: String(o.lifelineUid) } : {}),
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_FORCE_COLOR: "0",
    ANSIBLE_RETRY_FILES_ENABLED: "0",
    ANSIBLE_HOST_KEY_CHECKING: o.hostKeyChecking === "off" ? "False" : "True",
    ANSIBLE_SSH_ARGS: sshArgs(base, o.hostKeyChecking, o.knownHosts),
    ANSIBLE_SSH_CONTROL_PATH_DIR: ws.cp,
    ANSIBLE_PERSISTENT_CONTROL_PATH_DIR: ws.cp,
    ANSIBLE_LOCAL_TEMP: ws.tmp,
    // Python's temp files of the controller and of modules run with connection local (AnsiballZ
    // payloads a kill would leave behind) go into the workspace and disappear with it.
    TMPDIR: ws.tmp,
    PYTHONUNBUFFERED: "1",
    PYTHONIOENCODING: "utf-8",
  };
  delete env.ANSIBLE_STDOUT_CALLBACK_OVERRIDE;
  return env;
}
