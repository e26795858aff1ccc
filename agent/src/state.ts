// The agent's state directory: one per registration (agent id), so that two agent installations
// on one machine never touch each other's work.
//
//   <state dir>/            0700 (root: /var/lib/runner-agent/<agentId>; else $XDG_STATE_HOME/runner-agent/<agentId>)
//     held.json             the executions this agent holds right now (a restarted agent reports them lost)
//     spool/                upload backlogs beyond the memory cap while the API is away (spool.ts; 0600 files)
//     work/                 the default work directory (workspaces)
//     work/.agent           which agent process uses the work directory (one at a time)
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { isAlive } from "./process-group.ts";
import type { LeaseRef } from "./types.ts";

/** The agent id inside a credential (`rac_<agentId>_<secret>`), or null. */
export function agentIdOf(credential: string | undefined | null): string | null {
  const m = /^rac_([A-Za-z0-9-]+)_/.exec(credential ?? "");
  return m ? m[1]! : null;
}

export function defaultStateDir(agentId: string, env: NodeJS.ProcessEnv = process.env): string {
  const id = agentId.replace(/[^A-Za-z0-9-]/g, "") || "default";
  if (typeof process.getuid === "function" && process.getuid() === 0) return join("/var/lib/runner-agent", id);
  const base = env.XDG_STATE_HOME?.startsWith("/") ? env.XDG_STATE_HOME : join(homedir(), ".local", "state");
  return join(base, "runner-agent", id);
}

export interface HeldExecution extends LeaseRef {
  executionId: string;
}

/** The executions held right now, written through to `held.json` at every change. */
export class HeldStore {
  private readonly file: string;
  private readonly held = new Map<string, HeldExecution>();
  private writing: Promise<void> = Promise.resolve();

  constructor(stateDir: string) {
    this.file = join(stateDir, "held.json");
  }

  /** What a previous agent process left in the file (it did not end them: it died). */
  async previous(): Promise<HeldExecution[]> {
    try {
      const data = JSON.parse(await readFile(this.file, "utf8")) as unknown;
      if (!Array.isArray(data)) return [];
      return data.filter((h): h is HeldExecution => !!h && typeof h.executionId === "string" && typeof h.attempt === "number" && typeof h.leaseId === "string");
    } catch {
      return [];
    }
  }

  add(h: HeldExecution): Promise<void> {
    this.held.set(h.executionId, h);
    return this.save();
  }

  remove(executionId: string): Promise<void> {
    this.held.delete(executionId);
    return this.save();
  }

  /** Writes are serialized and atomic (rename), so a crash leaves the old or the new list. */
  save(): Promise<void> {
    const data = JSON.stringify([...this.held.values()]);
    this.writing = this.writing.then(async () => {
      const tmp = `${this.file}.${process.pid}.tmp`;
      await writeFile(tmp, data, { mode: 0o600 });
      await rename(tmp, this.file);
    });
    return this.writing.catch(() => {});
  }
}

/**
 * Takes the work directory for this process: refused while another live agent process uses it
 * (two agents sweeping one directory would kill each other's runs). Answers the other's
 * description when refused, else null.
 */
export async function claimWorkDir(workDir: string, agentId: string): Promise<string | null> {
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const file = join(workDir, ".agent");
  try {
    const other = JSON.parse(await readFile(file, "utf8")) as { agentId?: string; pid?: number };
    if (typeof other.pid === "number" && other.pid !== process.pid && isAlive(other.pid)) {
      return `agent ${other.agentId ?? "?"} (pid ${other.pid})`;
    }
  } catch {
    /* free */
  }
  await writeFile(file, JSON.stringify({ agentId, pid: process.pid }), { mode: 0o600 });
  return null;
}
