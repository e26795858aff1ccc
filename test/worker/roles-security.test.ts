import { describe, expect, it } from "vitest";
import { ROLE_TABLE, ROLES, type Role } from "../../worker/lib/roles";
import { api, token } from "./helpers";

/**
 * The role table (worker/lib/roles.ts, shown in the README) walked against the real routes: every
 * account-scoped route, called by each role (for the account, and as an operator), answers 403
 * exactly when the role is weaker than the route needs. The route list here is written out by
 * hand, so a route that names the wrong family or action in its middleware fails, and it must
 * match /openapi.json, so a new route cannot go unlisted.
 */

// The table itself, pinned: changing who may do what is a deliberate edit here and in the README.
const TABLE = {
  jobs: { read: "viewer", write: "user" },
  executions: { read: "viewer", write: "user" },
  schedules: { read: "viewer", write: "user" },
  inventory: { read: "viewer", write: "user" },
  agents: { read: "viewer", write: "admin" },
  settings: { read: "viewer", write: "admin" },
  serviceAccounts: { read: "admin", write: "admin" },
  webhooks: { read: "admin", write: "admin" },
  audit: { read: "admin", write: "admin" },
};

const X = "{executionId}";
const ROUTES: Record<string, Role> = {
  "get /jobs/{alias}": "viewer",
  "post /jobs/{alias}": "user",
  "get /jobs/{alias}/{jobId}": "viewer",
  "put /jobs/{alias}/{jobId}": "user",
  "delete /jobs/{alias}/{jobId}": "user",
  "get /jobs/{alias}/executions": "viewer",
  "post /jobs/{alias}/{jobId}/start": "user",
  "get /jobs/{alias}/{jobId}/executions": "viewer",
  [`get /jobs/{alias}/{jobId}/executions/${X}`]: "viewer",
  [`post /jobs/{alias}/{jobId}/executions/${X}/restart`]: "user",
  [`post /jobs/{alias}/{jobId}/executions/${X}/stop`]: "user",
  [`post /jobs/{alias}/{jobId}/executions/${X}/kill`]: "user",
  [`get /jobs/{alias}/{jobId}/executions/${X}/events`]: "viewer",
  [`get /jobs/{alias}/{jobId}/executions/${X}/log`]: "viewer",
  [`get /jobs/{alias}/{jobId}/executions/${X}/deliveries`]: "viewer",
  [`post /jobs/{alias}/{jobId}/executions/${X}/deliveries/{deliveryId}/redeliver`]: "user",
  "post /jobs/{alias}/{jobId}/schedules": "user",
  "get /jobs/{alias}/{jobId}/schedules": "viewer",
  "get /jobs/{alias}/{jobId}/schedules/{scheduleId}": "viewer",
  "put /jobs/{alias}/{jobId}/schedules/{scheduleId}": "user",
  "delete /jobs/{alias}/{jobId}/schedules/{scheduleId}": "user",
  "get /status/{alias}/job/{jobId}": "viewer",
  [`get /status/{alias}/job/{jobId}/execution/${X}`]: "viewer",
  "get /inventory/{alias}": "viewer",
  "put /inventory/{alias}": "user",
  "get /minions/{alias}": "viewer",
  "get /minions/{alias}/{agentId}": "viewer",
  "get /minions/{alias}/tokens": "viewer",
  "post /minions/{alias}/tokens": "admin",
  "delete /minions/{alias}/tokens/{tokenId}": "admin",
  "delete /minions/{alias}/{agentId}": "admin",
  "get /accounts/{alias}/settings": "viewer",
  "put /accounts/{alias}/settings": "admin",
  "post /serviceAccounts/{alias}": "admin",
  "get /serviceAccounts/{alias}": "admin",
  "get /serviceAccounts/{alias}/{serviceAccountAlias}": "admin",
  "put /serviceAccounts/{alias}/{serviceAccountAlias}": "admin",
  "delete /serviceAccounts/{alias}/{serviceAccountAlias}": "admin",
  "get /webhooks/{alias}/secret": "admin",
  "post /webhooks/{alias}/secret/rotate": "admin",
  "get /audit/{alias}": "admin",
};

const ALIAS = "roles";

describe("the role table (security)", () => {
  it("is the table the README shows", () => {
    expect(ROLE_TABLE).toEqual(TABLE);
  });

  it("lists every account-scoped route of /openapi.json", async () => {
    const doc = (await api("GET", "/openapi.json", { token: null })).json as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    const scoped = Object.entries(doc.paths)
      .filter(([path]) => path.includes("{alias}"))
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(scoped.sort()).toEqual(Object.keys(ROUTES).sort());
  });

  it.each(Object.entries(ROUTES))("%s needs %s", async (route, need) => {
    const [method, template] = route.split(" ") as [string, string];
    const path = template.replace("{alias}", ALIAS).replace(/\{(\w+)\}/g, () => crypto.randomUUID());
    for (const accounts of [[ALIAS], "*"] as const) {
      for (const role of ROLES) {
        const r = await api(method.toUpperCase(), path, {
          token: await token(accounts === "*" ? "*" : [...accounts], role),
          body: method === "get" || method === "delete" ? undefined : {},
        });
        const label = `${route} as ${role} (${accounts === "*" ? "operator" : "account"}): ${r.status} ${r.text.slice(0, 200)}`;
        if (ROLES.indexOf(role) < ROLES.indexOf(need)) {
          expect(r.status, label).toBe(403);
          expect(r.json.detail, label).toContain(`needs '${need}'`);
        } else {
          expect([401, 403], label).not.toContain(r.status);
          expect(r.status, label).toBeLessThan(500);
        }
      }
    }
  });
});
