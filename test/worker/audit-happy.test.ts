import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { insertAudit } from "../../worker/db/audit";
import { AUDIT_RETENTION_MS, pruneAuditLog } from "../../worker/domain/audit";
import worker from "../../worker/index";
import { api, token } from "./helpers";
import { executionIn } from "./execution-fixtures";
import { b64, playbookJob } from "./jobs-fixtures";

/**
 * The audit log, from a scripted session through the real routes: each change is recorded once,
 * with who made it (subject and kind), what, to which resource, from where, newest first, and
 * filterable; no secret the session used is anywhere in the stored rows.
 */
const A = "audited";
const ADMIN_SUB = "alice@example.test";
const IP = "203.0.113.7";

// Every secret the session sends or is answered: none may be stored in the log.
const SECRET = {
  jobKey: "-----BEGIN OPENSSH PRIVATE KEY-----\njob-key-material-AAAA\n-----END OPENSSH PRIVATE KEY-----\n",
  newJobKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nreplaced-key-material-BBBB\n-----END OPENSSH PRIVATE KEY-----\n",
  startKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nstart-override-key-CCCC\n-----END OPENSSH PRIVATE KEY-----\n",
  extraVar: "extra-var-value-never-logged",
  password: "first service account passphrase",
  newPassword: "second service account passphrase",
  wrongPassword: "a wrong password typed at login",
  unknownUsername: "typed-my-password-here-by-mistake",
  inventoryVar: "inventory-host-var-secret",
  repoPassword: "repository-password-secret",
};

interface Entry {
  id: string;
  accountAlias: string | null;
  time: number;
  action: string;
  subject: string;
  subjectKind: string;
  resourceType: string;
  resourceId: string | null;
  ip: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
}

async function auditPage(query = "", t?: string): Promise<{ totalSize: number; page: number; size: number; results: Entry[] }> {
  const r = await api("GET", `/audit/${A}${query}`, { token: t ?? (await token([A], "admin")) });
  expect(r.status, r.text).toBe(200);
  return r.json;
}

function ok<R extends { status: number; text: string }>(r: R, status = 200): R {
  expect(r.status, r.text).toBe(status);
  return r;
}

describe("the audit log of a scripted session", () => {
  // What the session did, in order: [action, resource type, resource id, subject, kind].
  const did: [string, string, string | null, string, string][] = [];
  const secrets: string[] = Object.values(SECRET);
  let jobId = "";
  let saId = "";
  let loginToken = "";

  it("records each change with who made it, once", async () => {
    const admin = await token([A], "admin", ADMIN_SUB);
    const user = await token([A], "user", "bob");
    secrets.push(admin, user);

    // A job: created (from an IP), replaced, its executions started, stopped, killed, restarted.
    const created = ok(
      await api("POST", `/jobs/${A}`, {
        token: admin,
        headers: { "cf-connecting-ip": IP },
        body: playbookJob({ name: "audited job", sshPrivateKey: b64(SECRET.jobKey), properties: { db_password: SECRET.extraVar } }),
      }),
    );
    jobId = created.json.id;
    did.push(["job.created", "job", jobId, ADMIN_SUB, "user"]);
    ok(await api("PUT", `/jobs/${A}/${jobId}`, { token: admin, body: { ...created.json, name: "audited job v2", sshPrivateKey: b64(SECRET.newJobKey) } }));
    did.push(["job.replaced", "job", jobId, ADMIN_SUB, "user"]);

    const started = ok(
      await api("POST", `/jobs/${A}/${jobId}/start`, { token: user, body: { sshPrivateKey: b64(SECRET.startKey), properties: { token: SECRET.extraVar } } }),
    );
    const e1 = started.json.execution_id as string;
    did.push(["execution.started", "execution", e1, "bob", "user"]);
    ok(await api("POST", `/jobs/${A}/${jobId}/executions/${e1}/stop`, { token: user }));
    did.push(["execution.stopped", "execution", e1, "bob", "user"]);

    const e2 = ok(await api("POST", `/jobs/${A}/${jobId}/start`, { token: user })).json.execution_id as string;
    did.push(["execution.started", "execution", e2, "bob", "user"]);
    ok(await api("POST", `/jobs/${A}/${jobId}/executions/${e2}/kill`, { token: user }));
    did.push(["execution.killed", "execution", e2, "bob", "user"]);

    // A failed run (the fixture starts it as "tester", then plays the agent), restarted, then killed.
    const e3 = await executionIn(A, jobId, "FAILURE");
    did.push(["execution.started", "execution", e3, "tester", "user"]);
    ok(await api("POST", `/jobs/${A}/${jobId}/executions/${e3}/restart`, { token: user }));
    did.push(["execution.restarted", "execution", e3, "bob", "user"]);
    ok(await api("POST", `/jobs/${A}/${jobId}/executions/${e3}/kill`, { token: user }));
    did.push(["execution.killed", "execution", e3, "bob", "user"]);

    // A service account: created, changed (password and role), logged in as, and a failed login.
    const sa = ok(
      await api("POST", `/serviceAccounts/${A}`, {
        token: admin,
        body: { alias: "deployer", username: "audit-deployer", password: SECRET.password, role: "user" },
      }),
    );
    saId = sa.json.id;
    did.push(["serviceAccount.created", "serviceAccount", "deployer", ADMIN_SUB, "user"]);
    ok(await api("PUT", `/serviceAccounts/${A}/deployer`, { token: admin, body: { password: SECRET.newPassword, role: "admin" } }));
    did.push(["serviceAccount.changed", "serviceAccount", "deployer", ADMIN_SUB, "user"]);
    ok(await api("POST", "/authentication/login", { token: null, body: { username: "audit-deployer", password: SECRET.wrongPassword } }), 401);
    did.push(["login.failed", "serviceAccount", "deployer", saId, "serviceAccount"]);
    // An unknown username is logged with no account: not in this account's log.
    ok(await api("POST", "/authentication/login", { token: null, body: { username: SECRET.unknownUsername, password: SECRET.wrongPassword } }), 401);
    const login = ok(await api("POST", "/authentication/login", { token: null, body: { username: "AUDIT-deployer", password: SECRET.newPassword } }));
    loginToken = login.json.bearerToken;
    secrets.push(loginToken);
    did.push(["login.succeeded", "serviceAccount", "deployer", saId, "serviceAccount"]);

    // A schedule, by the service account's own token: created, replaced, deleted.
    const sched = ok(
      await api("POST", `/jobs/${A}/${jobId}/schedules`, {
        token: loginToken,
        body: { description: "nightly", serviceAccountAlias: "deployer", trigger: { type: "cron", expression: "0 3 * * *" } },
      }),
    );
    did.push(["schedule.created", "schedule", sched.json.id, saId, "serviceAccount"]);
    ok(await api("PUT", `/jobs/${A}/${jobId}/schedules/${sched.json.id}`, { token: loginToken, body: { ...sched.json, enabled: false } }));
    did.push(["schedule.replaced", "schedule", sched.json.id, saId, "serviceAccount"]);
    ok(await api("DELETE", `/jobs/${A}/${jobId}/schedules/${sched.json.id}`, { token: loginToken }), 204);
    did.push(["schedule.deleted", "schedule", sched.json.id, saId, "serviceAccount"]);

    // A registration token (by the service account, now an admin), an agent registering with it, both revoked.
    const reg = ok(await api("POST", `/minions/${A}/tokens`, { token: loginToken, body: { name: "dc1 token", location: "dc1" } }));
    secrets.push(reg.json.token);
    did.push(["registrationToken.created", "registrationToken", reg.json.id, saId, "serviceAccount"]);
    const agent = ok(await api("POST", "/agent/register", { token: null, body: { token: reg.json.token, name: "audited-agent", hostname: "h1.example" } }));
    // The credential's secret part is everything after "rac_<agentId>_" (base64url may hold "_" itself).
    secrets.push(agent.json.credential, agent.json.credential.slice(`rac_${agent.json.agentId}_`.length));
    did.push(["agent.registered", "agent", agent.json.agentId, agent.json.agentId, "agent"]);
    ok(await api("DELETE", `/minions/${A}/tokens/${reg.json.id}`, { token: admin }), 204);
    did.push(["registrationToken.revoked", "registrationToken", reg.json.id, ADMIN_SUB, "user"]);
    ok(await api("DELETE", `/minions/${A}/${agent.json.agentId}`, { token: admin }), 204);
    did.push(["agent.revoked", "agent", agent.json.agentId, ADMIN_SUB, "user"]);

    // The inventory, by an operator.
    const op = await token("*", "admin", "root-operator");
    secrets.push(op);
    ok(await api("PUT", `/inventory/${A}`, { token: op, body: { hosts: [{ id: "db1", hostVars: { ansible_password: SECRET.inventoryVar } }] } }));
    did.push(["inventory.replaced", "inventory", null, "root-operator", "operator"]);

    // Refusals change nothing and record nothing.
    ok(await api("DELETE", `/jobs/${A}/nope`, { token: admin }), 404);
    ok(await api("POST", `/jobs/${A}`, { token: await token([A], "viewer"), body: playbookJob() }), 403);
    ok(await api("DELETE", `/minions/${A}/tokens/${reg.json.id}`, { token: admin }), 404); // already revoked

    // The job and the service account deleted.
    ok(await api("DELETE", `/jobs/${A}/${jobId}`, { token: admin }), 204);
    did.push(["job.deleted", "job", jobId, ADMIN_SUB, "user"]);
    ok(await api("DELETE", `/serviceAccounts/${A}/deployer`, { token: admin }), 204);
    did.push(["serviceAccount.deleted", "serviceAccount", "deployer", ADMIN_SUB, "user"]);

    const log = await auditPage();
    expect(log.totalSize).toBe(did.length);
    expect(log.results.map((e) => [e.action, e.resourceType, e.resourceId, e.subject, e.subjectKind])).toEqual([...did].reverse());
    for (const e of log.results) {
      expect(e.accountAlias).toBe(A);
      expect(e.requestId).toMatch(/^[0-9a-f-]{36}$/);
    }
    // Newest first.
    const times = log.results.map((e) => e.time);
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });

  it("keeps where each change came from and a few non-secret details", async () => {
    const log = (await auditPage()).results;
    const first = log.at(-1)!;
    expect(first).toMatchObject({ action: "job.created", ip: IP, details: { name: "audited job" } });
    expect(log.filter((e) => e.ip !== null)).toHaveLength(1); // CF-Connecting-IP was only sent once
    const byAction = (a: string) => log.find((e) => e.action === a)!;
    expect(byAction("job.replaced").details).toEqual({ name: "audited job v2" });
    expect(byAction("serviceAccount.changed").details).toEqual({ changed: ["password", "role"], username: "audit-deployer", role: "admin" });
    expect(byAction("login.succeeded").details).toEqual({ username: "audit-deployer", role: "admin" });
    expect(byAction("registrationToken.created").details).toEqual({ name: "dc1 token", location: "dc1" });
    expect(byAction("inventory.replaced").details).toEqual({ hosts: 1 });
    const start = log.filter((e) => e.action === "execution.started").at(-1)!;
    expect(start.details).toEqual({ jobId, status: "PENDING", trigger: "api", overrides: ["properties", "sshPrivateKey"] });
    // The request id is the one the answer carried (and the log line names).
    const r = await api("POST", `/serviceAccounts/${A}`, {
      token: await token([A], "admin"),
      body: { alias: "traced", username: "audit-traced", password: SECRET.password },
    });
    expect((await auditPage("?size=1")).results[0]!.requestId).toBe(r.headers.get("runner-request-id"));
  });

  it("filters by resource type, by one resource, and by time, with the usual paging", async () => {
    const all = (await auditPage()).results;
    const jobs = await auditPage("?resource=job");
    expect(jobs.results.map((e) => e.action)).toEqual(["job.deleted", "job.replaced", "job.created"]);
    const executions = all.filter((e) => e.resourceType === "execution");
    const one = executions.at(-1)!.resourceId!;
    const history = await auditPage(`?resource=execution/${one}`);
    expect(history.results.map((e) => e.action)).toEqual(["execution.stopped", "execution.started"]);
    expect((await auditPage("?resource=job/no-such-job")).totalSize).toBe(0);

    const middle = all[Math.floor(all.length / 2)]!;
    const since = await auditPage(`?since=${middle.time}`);
    expect(since.results.every((e) => e.time >= middle.time)).toBe(true);
    expect(since.results.map((e) => e.id)).toEqual(all.filter((e) => e.time >= middle.time).map((e) => e.id));
    expect((await auditPage(`?since=${Date.now() + 60_000}`)).totalSize).toBe(0);

    const paged = await auditPage("?page=1&size=3");
    expect(paged).toMatchObject({ totalSize: all.length, page: 1, size: 3 });
    expect(paged.results.map((e) => e.id)).toEqual(all.slice(3, 6).map((e) => e.id));
  });

  it("what belongs to no account is in the operators' log: shared-pool agents, logins of unknown usernames", async () => {
    const op = await token("*", "admin", "pool-keeper");
    const shared = ok(await api("POST", "/agent/register", { token: op, body: { name: "pool-1" } }));
    secrets.push(shared.json.credential);
    ok(await api("DELETE", `/minions/~shared/${shared.json.agentId}`, { token: op }), 204);
    const r = ok(await api("GET", "/audit/~shared", { token: op }));
    expect(r.json.results.map((e: Entry) => [e.action, e.subject, e.subjectKind, e.accountAlias])).toEqual([
      ["agent.revoked", "pool-keeper", "operator", null],
      ["agent.registered", "pool-keeper", "operator", null],
      ["login.failed", "unknown", "anonymous", null],
    ]);
    expect(r.json.results[2].details).toEqual({});
  });

  it("a schedule's start names the schedule", async () => {
    const sa = ok(
      await api("POST", `/serviceAccounts/${A}`, {
        token: await token([A], "admin"),
        body: { alias: "cron-sa", username: "audit-cron", password: SECRET.password, role: "user" },
      }),
    );
    expect(sa.json.alias).toBe("cron-sa");
    const job = ok(await api("POST", `/jobs/${A}`, { token: await token([A], "user"), body: playbookJob() })).json.id;
    const s = ok(
      await api("POST", `/jobs/${A}/${job}/schedules`, {
        token: await token([A], "user"),
        body: { description: "each minute", serviceAccountAlias: "cron-sa", trigger: { type: "cron", expression: "* * * * *" } },
      }),
    );
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: s.json.nextRunTime, cron: "* * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    const started = (await auditPage(`?resource=execution`)).results[0]!;
    expect(started).toMatchObject({ action: "execution.started", subject: s.json.id, subjectKind: "schedule", ip: null, requestId: null });
    expect(started.details).toMatchObject({ jobId: job, trigger: "schedule", scheduleId: s.json.id });
    await env.DB.prepare("UPDATE schedules SET enabled = 0, next_run_time = NULL").run();
  });

  it("stores no secret the session used, in any row or column", async () => {
    const { results } = await env.DB.prepare("SELECT * FROM audit_log").all<Record<string, unknown>>();
    expect(results.length).toBeGreaterThan(25);
    const stored = JSON.stringify(results);
    for (const s of secrets) {
      expect(s.length).toBeGreaterThan(8);
      expect(stored).not.toContain(s);
      expect(stored).not.toContain(b64(s));
    }
    for (const s of [SECRET.jobKey, SECRET.newJobKey, SECRET.startKey]) expect(stored).not.toContain(s.split("\n")[1]);
  });
});

describe("retention", () => {
  it("the cron prunes entries older than 90 days and keeps the rest, a bounded number per tick", async () => {
    const now = Date.now();
    const row = (id: string, time: number) => ({
      id,
      account_alias: "pruned",
      time,
      action: "job.created",
      subject: "s",
      subject_kind: "user",
      resource_type: "job",
      resource_id: id,
      ip: null,
      request_id: null,
      details: "{}",
    });
    const old = Array.from({ length: 5 }, (_, i) => row(`old-${i}`, now - AUDIT_RETENTION_MS - 1000 - i));
    const kept = [row("recent", now - AUDIT_RETENTION_MS + 60_000), row("new", now)];
    for (const r of [...old, ...kept]) await insertAudit(env.DB, r);
    const ids = async () =>
      (await env.DB.prepare("SELECT id FROM audit_log WHERE account_alias = 'pruned' ORDER BY id").all<{ id: string }>()).results.map((r) => r.id);

    // Bounded: two at most this time, the oldest first.
    expect(await pruneAuditLog(env, now, 2)).toBe(2);
    expect(await ids()).toEqual(["new", "old-0", "old-1", "old-2", "recent"]);

    // The Cron Trigger's tick does the rest.
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: now, cron: "* * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await ids()).toEqual(["new", "recent"]);
  });
});
