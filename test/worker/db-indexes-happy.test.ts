import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { listAudit, pruneAudit } from "../../worker/db/audit";
import { agentPresence, getAgent, findLiveTokenByHash, listLiveAgents, listLiveTokens, ownAgents } from "../../worker/db/agents";
import { getSettingsRow } from "../../worker/db/settings";
import {
  hasActiveExecution,
  jobExecutionsOldestFirst,
  jobKnown,
  leasedExecutionsOf,
  listExecutionViews,
  staleActiveExecutions,
  stillLeased,
} from "../../worker/db/executions";
import { getInventoryHosts } from "../../worker/db/inventory";
import { executionsByStatus, liveAgentCounts, pendingQueues } from "../../worker/db/metrics";
import { deleteJobUnlessActive, getJob, listJobs } from "../../worker/db/jobs";
import { dueSchedules, getSchedule, listSchedules } from "../../worker/db/schedules";
import { findServiceAccountByUsername, getServiceAccount, listServiceAccounts, serviceAccountTokenVersion } from "../../worker/db/service-accounts";
import { claimSlot, slotsHeld } from "../../worker/db/slots";
import { ACTIVE_STATUSES } from "../../worker/schemas/execution";

/**
 * "Every query that a list or the cron tick runs is served by an index" (docs/DESIGN.md), checked on the
 * SQL the storage functions really send: each is recorded with its bound values and explained by
 * SQLite. Dropping or narrowing an index in a migration fails here.
 */
interface Recorded {
  sql: string;
  args: unknown[];
}

/** A D1Database that records every statement prepared through it (and otherwise is the real one). */
function recording(db: D1Database, out: Recorded[]): D1Database {
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === "prepare") {
        return (sql: string) => {
          const stmt = target.prepare(sql);
          out.push({ sql, args: [] });
          const rec = out[out.length - 1]!;
          return new Proxy(stmt, {
            get(s, p) {
              if (p === "bind") return (...args: unknown[]) => ((rec.args = args), s.bind(...args));
              const v = Reflect.get(s, p, s);
              return typeof v === "function" ? v.bind(s) : v;
            },
          });
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

async function plan(r: Recorded): Promise<string[]> {
  const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${r.sql}`)
    .bind(...r.args)
    .all<{ detail: string }>();
  return results.map((x) => x.detail);
}

const page = { page: 2, size: 10 };
const TABLES = /^(?:SCAN|SEARCH) (jobs|executions|agents|agent_tokens|account_slots|inventories|service_accounts|schedules|audit_log|s|sa)\b/;

// [what, the call, the index each statement it sends must use (in order)]
const CASES: [string, (db: D1Database) => Promise<unknown>, RegExp[]][] = [
  ["jobs list (count, page)", (db) => listJobs(db, "acme", page), [/jobs_by_account/, /jobs_by_account/]],
  ["one job", (db) => getJob(db, "acme", "j1"), [/sqlite_autoindex_jobs_1/]],
  ["account's executions", (db) => listExecutionViews(db, "acme", {}, page), [/INDEX executions_by_\w+ \(account_alias=\?\)/, /executions_by_account\b/]],
  [
    "account's executions ?status=",
    (db) => listExecutionViews(db, "acme", { status: "RUNNING" }, page),
    [/executions_by_account_status/, /executions_by_account_status/],
  ],
  ["job's executions", (db) => listExecutionViews(db, "acme", { jobId: "j1" }, page), [/executions_by_job/, /executions_by_job\b/]],
  [
    "job's executions ?status=",
    (db) => listExecutionViews(db, "acme", { jobId: "j1", status: "FAILURE" }, page),
    [/executions_by_job_status/, /executions_by_job_status/],
  ],
  ["status service: a job's executions", (db) => jobExecutionsOldestFirst(db, "acme", "j1"), [/executions_by_job/]],
  ["is the job id known", (db) => jobKnown(db, "acme", "j1"), [/sqlite_autoindex_jobs_1|executions_by_job/]],
  ["delete guard: an active execution?", (db) => hasActiveExecution(db, "acme", "j1"), [/executions_by_job/]],
  [
    "delete unless active (and its schedules)",
    (db) => deleteJobUnlessActive(db, "acme", "nope", ACTIVE_STATUSES),
    [/sqlite_autoindex_jobs_1|executions_by_job/, /schedules_by_job/],
  ],
  // A range of the due index in slot order (no sort): the tick reads what is due, not what is held.
  [
    "cron tick: due schedules and their service accounts",
    (db) => dueSchedules(db, Date.now(), 100),
    [/^(?![\s\S]*TEMP B-TREE)SEARCH s USING INDEX schedules_due \(next_run_time>\? AND next_run_time<\?\)\nSEARCH sa USING INDEX service_accounts_by_alias/],
  ],
  ["a job's schedules (count, page)", (db) => listSchedules(db, "acme", "j1", page), [/schedules_by_job/, /schedules_by_job/]],
  ["one schedule", (db) => getSchedule(db, "acme", "j1", "s1"), [/sqlite_autoindex_schedules_1/]],
  ["cron sweep", (db) => staleActiveExecutions(db, Date.now(), 200), [/executions_by_status_updated/]],
  ["minions: running executions", (db) => leasedExecutionsOf(db, ["a1", "a2"]), [/executions_by_agent/]],
  ["dispatcher reconcile", (db) => stillLeased(db, ["e1", "e2"]), [/sqlite_autoindex_executions_1/]],
  ["minions list", (db) => listLiveAgents(db, "acme", page), [/agents_by_account/, /agents_by_account/]],
  ["shared-pool agents list", (db) => listLiveAgents(db, null, page), [/agents_by_account/, /agents_by_account/]],
  ["registration tokens list", (db) => listLiveTokens(db, "acme", page), [/agent_tokens_by_account/, /agent_tokens_by_account/]],
  ["routing and waiting reasons: a location's agents, last seen", (db) => agentPresence(db, "acme", null), [/agents_by_location/]],
  ["waiting reasons: the shared pool's agents, last seen", (db) => agentPresence(db, null, null), [/agents_by_account|agents_live/]],
  // One statement: the default location's last sighting and "any live agent at all".
  ["routing: the account's own agents", (db) => ownAgents(db, "acme"), [/agents_by_location[\s\S]*agents_by_account/]],
  ["account settings", (db) => getSettingsRow(db, "acme"), [/sqlite_autoindex_account_settings_1/]],
  ["register: token by hash", (db) => findLiveTokenByHash(db, "00ff"), [/sqlite_autoindex_agent_tokens_2|token_hash/]],
  ["agent by id", (db) => getAgent(db, "a1"), [/sqlite_autoindex_agents_1/]],
  ["slots held", (db) => slotsHeld(db, ["acme", "other"], Date.now()), [/account_slots_by_account/]],
  ["slot claim", (db) => claimSlot(db, "e1", "acme", 10, Date.now()), [/sqlite_autoindex_account_slots_1/, /account_slots_by_account/]],
  ["inventory", (db) => getInventoryHosts(db, "acme"), [/sqlite_autoindex_inventories_1/]],
  ["service accounts list", (db) => listServiceAccounts(db, "acme", page), [/service_accounts_by_\w+ \(account_alias=\?\)/, /service_accounts_by_account\b/]],
  ["one service account", (db) => getServiceAccount(db, "acme", "deployer"), [/service_accounts_by_alias/]],
  ["login: by username", (db) => findServiceAccountByUsername(db, "Deploy-Bot"), [/service_accounts_by_username/]],
  ["metrics: executions by status", (db) => executionsByStatus(db), [/COVERING INDEX executions_by_status_updated \(status=\?\)/]],
  ["metrics: pending by account and location", (db) => pendingQueues(db), [/executions_by_status_updated \(status=\?\)[\s\S]*sqlite_autoindex_jobs_1/]],
  ["metrics: live agents online and offline", (db) => liveAgentCounts(db, Date.now()), [/INDEX agents_live \(revoked_time=\?\)/]],
  ["every login token's check", (db) => serviceAccountTokenVersion(db, "sa1"), [/sqlite_autoindex_service_accounts_1/]],
  // `since` bounds the range of the index (time>? or time<?, as SQLite reads a DESC column).
  [
    "audit log (count, page)",
    (db) => listAudit(db, "acme", { since: 0 }, page),
    [/audit_by_account \(account_alias=\? AND time[<>]\?\)/, /audit_by_account \(account_alias=\? AND time[<>]\?\)/],
  ],
  ["audit log ?resource=type", (db) => listAudit(db, "acme", { since: 0, resourceType: "job" }, page), [/audit_by_resource_type/, /audit_by_resource_type/]],
  [
    "audit log ?resource=type/id",
    (db) => listAudit(db, "acme", { since: 0, resourceType: "job", resourceId: "j1" }, page),
    [/audit_by_resource\b/, /audit_by_resource\b/],
  ],
  ["audit log of no account (operators)", (db) => listAudit(db, null, { since: 0 }, page), [/audit_by_account/, /audit_by_account/]],
  ["cron: audit prune, oldest first", (db) => pruneAudit(db, Date.now(), 1000), [/audit_by_time \(time<\?\)/]],
];

describe("indexes behind every list and cron query", () => {
  it.each(CASES)("%s", async (_what, run, indexes) => {
    const sent: Recorded[] = [];
    await run(recording(env.DB, sent));
    expect(sent).toHaveLength(indexes.length);
    for (const [i, r] of sent.entries()) {
      const detail = await plan(r);
      const text = detail.join("\n");
      // No table is read whole: every access to a table of ours is a SEARCH through an index.
      for (const d of detail) {
        const m = TABLES.exec(d);
        if (m) expect(d, `${r.sql}\n${text}`).toMatch(/^SEARCH .* USING (COVERING )?INDEX|^SEARCH .* USING INTEGER PRIMARY KEY/);
      }
      expect(text, r.sql).toMatch(indexes[i]!);
      // A page is read in index order, not sorted afterwards.
      if (/LIMIT \? OFFSET \?/.test(r.sql)) expect(text, r.sql).not.toContain("TEMP B-TREE");
    }
  });
});
