import { z } from "@hono/zod-openapi";
import { HostId, hostVars, IMPLICIT_GROUPS, isObject } from "./job";

/**
 * The account inventory: every host an account's dynamic-inventory jobs run on, with its groups
 * and variables. One schema for the PUT body and the answer (which fills in `groups: []` and
 * `hostVars: {}`). Host vars are not secrets: they are stored and answered as given.
 */

export const MAX_INVENTORY_HOSTS = 10_000;
export const MAX_GROUPS_PER_HOST = 100;

const GroupName = z
  .string()
  .max(255, { message: "must be at most 255 characters" })
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "must be an Ansible group name: a letter or _, then letters, digits or _" })
  .refine((g) => !IMPLICIT_GROUPS.has(g), { message: "is one of Ansible's implicit groups (all, ungrouped)" });

const InventoryHost = z
  .object({
    id: HostId,
    groups: z
      .array(GroupName)
      .max(MAX_GROUPS_PER_HOST, { message: `must have at most ${MAX_GROUPS_PER_HOST} groups` })
      .nullish(),
    hostVars: hostVars.nullish(),
  })
  .openapi("InventoryHost");

/** Host ids are unique, and so are the groups of one host (checked alongside the per-field rules). */
function noRepeats(v: Record<string, unknown>, ctx: z.RefinementCtx) {
  if (!Array.isArray(v.hosts)) return;
  const ids = new Set<string>();
  v.hosts.forEach((h, i) => {
    if (!isObject(h)) return;
    if (typeof h.id === "string" && h.id) {
      if (ids.has(h.id)) ctx.addIssue({ code: "custom", path: ["hosts", i, "id"], message: "duplicates an earlier host id" });
      ids.add(h.id);
    }
    if (!Array.isArray(h.groups)) return;
    const groups = new Set<unknown>();
    h.groups.forEach((g, j) => {
      if (groups.has(g)) ctx.addIssue({ code: "custom", path: ["hosts", i, "groups", j], message: "duplicates an earlier group of this host" });
      groups.add(g);
    });
  });
}

export const Inventory = z
  .object({
    hosts: z.array(InventoryHost).max(MAX_INVENTORY_HOSTS, { message: `must have at most ${MAX_INVENTORY_HOSTS} hosts` }),
  })
  .superRefine(noRepeats, { when: (p) => isObject(p.value) })
  .openapi("Inventory", {
    description:
      "The account's inventory, replaced whole by PUT. A job with `useDynamicInventory` runs on all of it (grouped); its playbook's " +
      "`hosts:` patterns pick from it. Host vars are not secrets: they are stored and answered as given.",
  });
export type Inventory = z.infer<typeof Inventory>;

/** A host as stored, answered and leased: every member present. */
export interface StoredInventoryHost {
  id: string;
  groups: string[];
  hostVars: Record<string, unknown>;
}
