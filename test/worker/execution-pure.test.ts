// The Execution object's pure pieces (worker/execution/): the state machine's reasons and
// targets, the clock's deadlines, host stats, and the lease body.
import { describe, expect, it } from "vitest";
import { lostAgentWindowMs, UNREACHABLE_AFTER_MS, type JobForLease } from "../../worker/domain/contracts";
import { DEADLINES, nextAlarm, unreachableAt } from "../../worker/execution/deadlines";
import { mergeHostStats, statsFrom } from "../../worker/execution/host-stats";
import { leaseBody, mergeJob, secretPart, secretValues } from "../../worker/execution/lease-body";
import { reasonFor, target, TERMINAL, TRANSITIONS, type Cause } from "../../worker/execution/machine";
import { EXECUTION_STATUSES, type ExecutionStatus, type HostStats } from "../../worker/schemas/execution";

const stats = (over: Partial<HostStats> = {}): HostStats => ({ ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0, ...over });

describe("machine: reasonFor", () => {
  const cases: [Cause, ExecutionStatus, ExecutionStatus, string | null, string | undefined, string | null][] = [
    // cause, to, from, previous reason, given, expected
    ["stop", "STOPPING", "RUNNING", null, undefined, "stopped"],
    ["stop", "STOPPED", "PENDING", null, undefined, "stopped"],
    ["kill", "KILLING", "STOPPING", "stopped", undefined, "killed"],
    ["ttl", "STOPPING", "RUNNING", null, undefined, "ttl_expired"],
    ["escalate", "KILLING", "STOPPING", "ttl_expired", undefined, "ttl_expired"],
    ["escalate", "KILLING", "STOPPING", "stopped", undefined, "stop_expired"],
    ["kill_timeout", "KILLED", "KILLING", "killed", undefined, "kill_unconfirmed"],
    ["lease_lost", "FAILURE", "RUNNING", null, undefined, "agent_lost"],
    ["lease_lost", "FAILURE", "RUNNING", null, "agent_revoked", "agent_revoked"],
    ["unleasable", "INIT_FAILURE", "PENDING", null, undefined, "job_not_found"],
    ["unleasable", "INIT_FAILURE", "PENDING", null, "secrets_unavailable", "secrets_unavailable"],
    ["failed", "FAILURE", "RUNNING", null, undefined, "playbook_failed"],
    ["failed", "FAILURE", "RUNNING", null, "hosts_unreachable", "hosts_unreachable"],
    ["init_failed", "INIT_FAILURE", "INITIALIZING", null, undefined, "init_failed"],
    ["init_failed", "INIT_FAILURE", "INITIALIZING", null, "clone_failed", "clone_failed"],
    // What put it into STOPPING/KILLING names the end, over what the agent says.
    ["stopped", "STOPPED", "STOPPING", "ttl_expired", "stopped", "ttl_expired"],
    ["stopped", "STOPPED", "RUNNING", null, "agent_shutdown", "agent_shutdown"],
    ["stopped", "STOPPED", "RUNNING", null, undefined, "stopped"],
    ["killed", "KILLED", "KILLING", "stop_expired", undefined, "stop_expired"],
    ["killed", "KILLED", "RUNNING", null, undefined, "killed"],
    ["release", "STOPPED", "STOPPING", "stopped", undefined, "stopped"],
    ["release", "KILLED", "KILLING", null, undefined, "stopped"],
    // Statuses that carry no reason.
    ["succeeded", "SUCCESS", "STOPPING", "stopped", "whatever", null],
    ["lease_lost", "PENDING", "INITIALIZING", null, "agent_lost", null],
    ["lease", "INITIALIZING", "PENDING", null, undefined, null],
    ["running", "RUNNING", "INITIALIZING", null, undefined, null],
  ];
  it.each(cases)("%s: %s → %s (previous %s, given %s) → %s", (cause, to, from, previous, given, expected) => {
    expect(reasonFor(cause, to, from, previous, given)).toBe(expected);
  });
});

describe("machine: the transition table", () => {
  it("leads only to known statuses, and out of a terminal state only by restart", () => {
    for (const [cause, row] of Object.entries(TRANSITIONS) as [Cause, Record<string, unknown>][]) {
      for (const [from, to] of Object.entries(row)) {
        expect(EXECUTION_STATUSES).toContain(from);
        expect(EXECUTION_STATUSES).toContain(typeof to === "string" ? to : (to as { to: string }).to);
        if (TERMINAL.has(from as ExecutionStatus)) expect(cause).toBe("restart");
      }
    }
  });

  it("answers null for what the table does not list, and honours onlyIfNotStarted", () => {
    expect(target("restart", "SUCCESS", false)).toBeNull();
    expect(target("lease", "RUNNING", false)).toBeNull();
    expect(target("restart", "FAILURE", false)).toBe("PENDING");
    expect(target("release", "STOPPING", false)).toBe("STOPPED");
    expect(target("release", "STOPPING", true)).toBeNull();
    expect(target("kill", "KILLING", true)).toBe("KILLING");
  });
});

describe("deadlines", () => {
  type Clock = Parameters<typeof nextAlarm>[0];
  const base: Clock = { status: "RUNNING", leaseExpiresAt: 5_000, killDeadline: null, stopEscalateAt: null, ttlFired: false, ttlAt: 9_000, retryAt: null };

  it("sets the alarm to the earliest deadline that applies in the status", () => {
    expect(nextAlarm(base)).toBe(5_000);
    expect(nextAlarm({ ...base, retryAt: 1_000 })).toBe(1_000);
    expect(nextAlarm({ ...base, status: "STOPPING", stopEscalateAt: 3_000 })).toBe(3_000);
    expect(nextAlarm({ ...base, status: "RUNNING", stopEscalateAt: 3_000 })).toBe(5_000); // escalation only while STOPPING
    expect(nextAlarm({ ...base, status: "PENDING", leaseExpiresAt: null })).toBe(9_000);
    expect(nextAlarm({ ...base, status: "SUCCESS", leaseExpiresAt: null })).toBeNull();
    expect(nextAlarm({ ...base, status: "PENDING", leaseExpiresAt: null, ttlFired: true })).toBeNull();
  });

  it("says which have passed", () => {
    const due = (s: Clock, now: number) => DEADLINES.filter((d) => d.due(s, now)).map((d) => d.cause);
    expect(due(base, 4_999)).toEqual([]);
    expect(due(base, 5_000)).toEqual(["lease_lost"]);
    expect(due(base, 9_000)).toEqual(["lease_lost", "ttl"]);
    expect(due({ ...base, status: "KILLING", killDeadline: 2_000 }, 2_000)).toEqual(["kill_timeout"]);
  });

  it("marks an acknowledged lease's agent unreachable two heartbeats after its last call, once", () => {
    const seen = { ...base, leaseExpiresAt: 121_000, ttlAt: 999_000, lastSeenAt: 1_000, unreachableSince: null };
    expect(unreachableAt(seen)).toBe(1_000 + UNREACHABLE_AFTER_MS);
    expect(nextAlarm(seen)).toBe(1_000 + UNREACHABLE_AFTER_MS);
    expect(unreachableAt({ ...seen, unreachableSince: 1_000 })).toBeNull(); // marked: next is the lease's end
    expect(nextAlarm({ ...seen, unreachableSince: 1_000 })).toBe(121_000);
    expect(unreachableAt({ ...seen, lastSeenAt: null })).toBeNull(); // unacknowledged: it only expires
    expect(unreachableAt({ ...seen, status: "PENDING" })).toBeNull();
  });
});

describe("the lost-agent window", () => {
  it("is LOST_AGENT_WINDOW_SECONDS, 15 to 3600 whole seconds, else 120 s", () => {
    const w = (v: string | undefined) => lostAgentWindowMs({ LOST_AGENT_WINDOW_SECONDS: v as string });
    expect(w("120")).toBe(120_000);
    expect(w(" 40 ")).toBe(40_000);
    expect(w("15")).toBe(15_000);
    expect(w("3600")).toBe(3_600_000);
    for (const bad of [undefined, "", "14", "3601", "-30", "1.5", "2m", "abc"]) expect(w(bad), String(bad)).toBe(120_000);
  });
});

describe("host stats", () => {
  it("reads the callback's {hosts} form, the bare form and Ansible's own names", () => {
    expect(statsFrom({ hosts: { web1: { ok: 2, changed: 1 } }, custom: {} })).toEqual({ web1: stats({ ok: 2, changed: 1 }) });
    expect(statsFrom({ web1: { ok: 1, failures: 2, dark: 1 } })).toEqual({ web1: stats({ ok: 1, failed: 2, unreachable: 1 }) });
  });

  it("keeps counts whole and non-negative, skips what is not an object, and answers null for nothing", () => {
    expect(statsFrom({ h: { ok: 2.7, failed: -3, skipped: Number.NaN, changed: "4" } })).toEqual({ h: stats({ ok: 2 }) });
    expect(statsFrom({ h: 3, g: null })).toBeNull();
    expect(statsFrom(null)).toBeNull();
    expect(statsFrom("text")).toBeNull();
  });

  it("keeps a host named __proto__ as a host", () => {
    const read = statsFrom(JSON.parse('{"hosts": {"__proto__": {"ok": 1}}}'))!;
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    expect(Object.keys(read)).toEqual(["__proto__"]);
    const merged = mergeHostStats({}, read).hostStats;
    expect(Object.keys(merged)).toEqual(["__proto__"]);
    expect(Object.getOwnPropertyDescriptor(merged, "__proto__")?.value).toEqual(stats({ ok: 1 }));
  });

  it("merges over earlier counters (a restart on the failed hosts keeps the others') and names the failed hosts", () => {
    const first = { web1: stats({ ok: 3 }), web2: stats({ failed: 1 }), web3: stats({ unreachable: 1 }) };
    const again = mergeHostStats(first, { web2: stats({ ok: 3 }) });
    expect(again.hostStats).toEqual({ web1: stats({ ok: 3 }), web2: stats({ ok: 3 }), web3: stats({ unreachable: 1 }) });
    expect(again.failedHosts).toEqual(["web3"]);
    expect(mergeHostStats(first, {}).failedHosts).toEqual(["web2", "web3"]);
  });
});

describe("lease body", () => {
  const job: JobForLease = {
    name: "deploy",
    executionTtl: 60,
    playbook: "LS0tCg==",
    hosts: [
      { id: "web1", hostVars: { port: 22 }, sshPrivateKey: "stored-web1" },
      { id: "web2", sshPrivateKey: null },
    ],
    sshPrivateKey: "stored-job-key",
    properties: { a: 1, b: 2 },
    playbookTags: ["x"],
    useDynamicInventory: false,
    location: "dc1",
  };

  it("merges the start overrides over the job: extra vars, tags, keys per host and for the job", () => {
    const merged = mergeJob(
      job,
      { properties: { b: 3, c: 4 }, playbookTags: ["y"] },
      { hosts: [{ id: "web2", sshPrivateKey: "given-web2" }], sshPrivateKey: "given-job" },
    );
    expect(merged).toEqual({
      name: "deploy",
      executionTtl: 60,
      playbook: "LS0tCg==",
      hosts: [
        { id: "web1", hostVars: { port: 22 }, sshPrivateKey: "stored-web1" },
        { id: "web2", hostVars: undefined, sshPrivateKey: "given-web2" },
      ],
      sshPrivateKey: "given-job",
      properties: { a: 1, b: 3, c: 4 },
      playbookTags: ["y"],
      useDynamicInventory: false,
    });
    expect(merged).not.toHaveProperty("location"); // routing only: never sent to an agent
    expect(merged).not.toHaveProperty("repository");
  });

  it("keeps the job's own values without overrides", () => {
    const merged = mergeJob({ ...job, name: undefined }, {}, {});
    expect(merged.name).toBeNull();
    expect(merged.sshPrivateKey).toBe("stored-job-key");
    expect(merged.playbookTags).toEqual(["x"]);
    expect(merged.properties).toEqual({ a: 1, b: 2 });
  });

  it("lists every secret, with the PEM inside a base64 key and a password inside the repository URL", () => {
    const pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n";
    const key = btoa(pem);
    const values = secretValues({
      ...mergeJob({ ...job, playbook: undefined, sshPrivateKey: key }, {}, {}),
      repository: { url: "https://deployer:s3cr%40t@git.example.com/r.git", defaultPlaybook: "site.yml", credentials: { password: "pw", sshPrivateKey: null } },
    });
    expect(values).toEqual(expect.arrayContaining([key, pem, "s3cr@t", "pw", "stored-web1"]));
    expect(values).not.toContain(null);
    expect(new Set(values).size).toBe(values.length);
  });

  it("takes only the secret part of the overrides, and nothing when there is none", () => {
    expect(secretPart({})).toBeNull();
    expect(secretPart({ hosts: [{ id: "a" }, { id: "b", sshPrivateKey: null }] })).toBeNull();
    expect(secretPart({ hosts: [{ id: "a" }, { id: "b", sshPrivateKey: "k" }], sshPrivateKey: "j" })).toEqual({
      hosts: [{ id: "b", sshPrivateKey: "k" }],
      sshPrivateKey: "j",
    });
  });

  it("assembles the lease from the execution, the merged job and its secrets", () => {
    const s = { id: "e1", attempt: 2, accountAlias: "acme", jobId: "j1", ttlAt: 99, limit: ["web2"], overrides: { check: true } };
    const body = leaseBody(s, { leaseId: "l1", leaseExpiresAt: 50 }, job, {}, null);
    expect(body).toMatchObject({
      executionId: "e1",
      attempt: 2,
      leaseId: "l1",
      leaseExpiresAt: 50,
      deadline: 99,
      limit: ["web2"],
      check: true,
      diff: false,
      inventory: null,
    });
    expect(body.secrets).toEqual(expect.arrayContaining(["stored-job-key", "stored-web1"]));
    expect(body.heartbeatIntervalMs).toBeGreaterThan(0);
  });
});
