/**
 * The account inventory: what a job with `useDynamicInventory` runs on. A lease carries the
 * inventory as it is when the lease is handed out (so a restart runs on the current inventory,
 * limited by host id to the hosts that failed: see docs/agent-protocol.md "Lease").
 */
import { getInventoryHosts, putInventoryHosts } from "../db/inventory";
import type { Actor } from "../schemas/audit";
import type { LeaseBody } from "../schemas/execution";
import type { Inventory, StoredInventoryHost } from "../schemas/inventory";
import { auditStatement } from "./audit";

export async function readInventory(env: Env, accountAlias: string): Promise<{ hosts: StoredInventoryHost[] }> {
  return { hosts: await getInventoryHosts(env.DB, accountAlias) };
}

/** Replaces the whole inventory; answers it as stored (every host with `groups` and `hostVars`). */
export async function replaceInventory(env: Env, accountAlias: string, input: Inventory, actor: Actor): Promise<{ hosts: StoredInventoryHost[] }> {
  const hosts = input.hosts.map((h) => ({ id: h.id, groups: h.groups ?? [], hostVars: h.hostVars ?? {} }));
  // Host vars may hold anything (passwords among them): the audit log keeps the count only.
  const audit = auditStatement(env.DB, actor, {
    accountAlias,
    action: "inventory.replaced",
    resource: { type: "inventory", id: null },
    details: { hosts: hosts.length },
  });
  await putInventoryHosts(env.DB, accountAlias, hosts, Date.now(), audit);
  return { hosts };
}

/** The inventory a dynamic-inventory job's lease carries (read when the lease is handed out). */
export async function loadInventoryForLease(env: Env, accountAlias: string): Promise<NonNullable<LeaseBody["inventory"]>> {
  // Host vars are JSON from the store; the lease's wire type spells JSON values `JsonField`.
  return { hosts: (await getInventoryHosts(env.DB, accountAlias)) as NonNullable<LeaseBody["inventory"]>["hosts"] };
}
