// The inventory, keys and variables of one run, written as private files (never on the command
// line), and the ansible-playbook arguments that point at them.
import { join } from "node:path";
import { decodePrivateKey, KeyError } from "./keys.ts";
import type { Lease } from "./types.ts";
import { allDone, writePrivateFile } from "./workspace.ts";

export class InventoryError extends Error {}

type Vars = Record<string, unknown>;

export interface RunFiles {
  /** ansible-playbook arguments, without the playbook itself. */
  args: string[];
  inventoryPath: string;
  hostIds: string[];
}

function isObject(v: unknown): v is Vars {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

/**
 * Builds the YAML-plugin inventory (JSON is YAML) for a lease:
 * the job's hosts with their hostVars, or with useDynamicInventory the account inventory's hosts
 * and groups (job hosts of the same id add their vars and keys on top). Keys are file paths.
 */
export function buildInventory(lease: Lease, keyFiles: { default?: string; hosts: Map<string, string> }): Vars {
  const hosts: Record<string, Vars> = {};
  const children: Record<string, { hosts: Record<string, null> }> = {};
  const job = lease.job;
  if (job.useDynamicInventory) {
    for (const h of lease.inventory?.hosts ?? []) {
      hosts[h.id] = { ...(isObject(h.hostVars) ? h.hostVars : {}) };
      for (const g of h.groups ?? []) {
        if (!g || g === "all") continue;
        (children[g] ??= { hosts: {} }).hosts[h.id] = null;
      }
    }
  }
  for (const h of job.hosts ?? []) {
    hosts[h.id] = { ...(hosts[h.id] ?? {}), ...(isObject(h.hostVars) ? h.hostVars : {}) };
  }
  for (const [id, path] of keyFiles.hosts) {
    if (hosts[id]) hosts[id].ansible_ssh_private_key_file = path;
  }
  const all: Vars = { hosts };
  // The job's key is the default: a group var, so any host's own key or hostVars path wins.
  if (keyFiles.default) all.vars = { ansible_ssh_private_key_file: keyFiles.default };
  if (Object.keys(children).length) all.children = children;
  return { all };
}

/**
 * A host id as a line of a --limit file. Ansible takes an exact host name as that host before any
 * pattern matching, except that a line starting with "!" or "&" is first read as an exclusion or
 * intersection (a limit of only "!web" would mean "every host but web"): those go as an anchored
 * regular expression, which matches that host name alone (group names cannot start with either).
 */
export function limitPattern(id: string): string {
  if (!/^[!&]/.test(id)) return id;
  return "~^" + id.replace(/[.*+?^${}()|[\]\\!&]/g, "\\$&") + "$";
}

export async function writeRunFiles(lease: Lease, privateDir: string): Promise<RunFiles> {
  const job = lease.job;
  const hostKeys = new Map<string, string>();
  let defaultKey: string | undefined;
  // Every file is decided first, then written side by side (each write is a round trip to libuv's
  // thread pool); a bad key fails before anything is written.
  const files: [string, string][] = [];
  const writeKey = (value: string, what: string) => {
    let pem: string;
    try {
      pem = decodePrivateKey(value, what);
    } catch (err) {
      throw new InventoryError(err instanceof KeyError ? err.message : `${what}: ${String(err)}`);
    }
    const path = join(privateDir, `key-${files.length + 1}.pem`);
    files.push([path, pem]);
    return path;
  };
  if (job.sshPrivateKey) defaultKey = writeKey(job.sshPrivateKey, "the job's sshPrivateKey");
  for (const [i, h] of (job.hosts ?? []).entries()) {
    if (h.sshPrivateKey) hostKeys.set(h.id, writeKey(h.sshPrivateKey, `hosts[${i}] (${h.id}) sshPrivateKey`));
  }

  const inventory = buildInventory(lease, { default: defaultKey, hosts: hostKeys });
  const hostIds = Object.keys((inventory.all as { hosts: Vars }).hosts);
  if (!hostIds.length) {
    throw new InventoryError(
      job.useDynamicInventory
        ? "the account inventory has no hosts (useDynamicInventory is set): add hosts with PUT /inventory/{alias}"
        : "the job has no hosts: give it hosts, or set useDynamicInventory",
    );
  }
  const inventoryPath = join(privateDir, "inventory.json");
  files.push([inventoryPath, JSON.stringify(inventory, null, 1)]);
  const args = ["-i", inventoryPath];

  if (isObject(job.properties) && Object.keys(job.properties).length) {
    const varsPath = join(privateDir, "extra-vars.json");
    files.push([varsPath, JSON.stringify(job.properties)]);
    args.push("--extra-vars", `@${varsPath}`);
  }
  for (const tag of job.playbookTags ?? []) if (tag) args.push("--tags", tag);
  // A restart runs the failed hosts only. A file: no length limit, and no "," or ":" splitting.
  if (lease.limit?.length) {
    const limitPath = join(privateDir, "limit.txt");
    files.push([limitPath, lease.limit.map(limitPattern).join("\n") + "\n"]);
    args.push("--limit", `@${limitPath}`);
  }
  // The job's parallelism; absent: Ansible's default (or the agent's own ANSIBLE_FORKS).
  if (Number.isInteger(job.forks) && job.forks! > 0) args.push("--forks", String(job.forks));
  if (lease.check) args.push("--check");
  if (lease.diff) args.push("--diff");
  await allDone(files.map(([path, data]) => writePrivateFile(path, data)));
  return { args, inventoryPath, hostIds };
}
