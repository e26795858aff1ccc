// How a run ends (agent/src/outcome.ts): ansible-playbook's exit to status and reason, and what
// a stop, kill, abandon or hand-back makes of it.
import { describe, expect, it } from "vitest";
import { ansibleError, exitOutcome, finalReport, overrideByRequest, unexpectedOutcome, type AnsibleExit } from "../src/outcome.ts";
import type { HostStats } from "../src/types.ts";

const stats = (over: Partial<HostStats> = {}): HostStats => ({ ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0, ...over });
const exit = (over: Partial<AnsibleExit>): AnsibleExit => ({ code: 0, signal: null, started: true, stats: null, failedSeen: [], ansibleError: "", ...over });

describe("exit outcome", () => {
  it("0 is SUCCESS, with the stats and no failed host", () => {
    const s = { web1: stats({ ok: 2 }) };
    expect(exitOutcome(exit({ stats: s }))).toEqual({ status: "SUCCESS", exitCode: 0, hostStats: s, failedHosts: [] });
  });

  it("2 is FAILURE playbook_failed naming the failed hosts, apart from the unreachable ones", () => {
    const s = { b: stats({ failed: 1 }), a: stats({ failed: 2 }), c: stats({ unreachable: 1 }), d: stats({ ok: 1 }) };
    expect(exitOutcome(exit({ code: 2, stats: s }))).toEqual({
      status: "FAILURE",
      reason: "playbook_failed",
      detail: "failed on a, b; unreachable: c",
      exitCode: 2,
      hostStats: s,
      failedHosts: ["a", "b", "c"],
    });
  });

  it("4 is hosts_unreachable; without stats the hosts seen failing are named", () => {
    expect(exitOutcome(exit({ code: 4, failedSeen: new Set(["z", "y"]) }))).toMatchObject({
      status: "FAILURE",
      reason: "hosts_unreachable",
      failedHosts: ["y", "z"],
      detail: "failed on y, z",
    });
  });

  it("a signal Runner did not send is ansible_killed, said plainly", () => {
    const o = exitOutcome(exit({ code: null, signal: "SIGKILL" }));
    expect(o).toMatchObject({ status: "FAILURE", reason: "ansible_killed", exitCode: null });
    expect(o.detail).toContain("killed by SIGKILL, not by Runner");
  });

  it("another code is ansible_error with Ansible's message, or the code", () => {
    expect(exitOutcome(exit({ code: 1, ansibleError: "ERROR! something" }))).toMatchObject({ reason: "ansible_error", detail: "ERROR! something" });
    expect(exitOutcome(exit({ code: 250 }))).toMatchObject({ reason: "ansible_error", detail: "ansible-playbook exited with 250" });
  });

  it("before the playbook started: 0 is SUCCESS (nothing to run), anything else INIT_FAILURE playbook_invalid", () => {
    expect(exitOutcome(exit({ started: false }))).toEqual({ status: "SUCCESS", exitCode: 0 });
    expect(exitOutcome(exit({ started: false, code: 4, ansibleError: "ERROR! bad yaml" }))).toEqual({
      status: "INIT_FAILURE",
      reason: "playbook_invalid",
      detail: "ERROR! bad yaml",
      exitCode: 4,
    });
    expect(exitOutcome(exit({ started: false, code: null, signal: "SIGTERM" })).detail).toBe(
      "ansible-playbook exited with SIGTERM before the playbook started",
    );
  });
});

describe("requests override the run's own end", () => {
  const failed = exitOutcome(exit({ code: 2, stats: { a: stats({ failed: 1 }) } }));
  it("stop and kill end STOPPED/KILLED with their reason, keeping the exit code and stats", () => {
    expect(overrideByRequest({ kind: "stop", reason: "ttl_expired" }, failed)).toEqual({
      status: "STOPPED",
      reason: "ttl_expired",
      exitCode: 2,
      hostStats: failed.hostStats,
    });
    expect(overrideByRequest({ kind: "kill", reason: "killed" }, { status: null })).toEqual({ status: "KILLED", reason: "killed", exitCode: undefined });
  });
  it("abandon and hand-back report nothing", () => {
    expect(overrideByRequest({ kind: "abandon" }, failed)).toEqual({ status: null, abandoned: true });
    expect(overrideByRequest({ kind: "handback" }, failed)).toEqual({ status: null, handedBack: true });
  });
  it("no request leaves it as it was", () => {
    expect(overrideByRequest(null, failed)).toBe(failed);
  });
});

describe("reports", () => {
  it("the final report carries what the outcome has, and nothing for an outcome without a status", () => {
    expect(finalReport({ status: "SUCCESS", exitCode: 0, failedHosts: [] })).toEqual({ status: "SUCCESS", exitCode: 0, failedHosts: [] });
    expect(finalReport({ status: null, abandoned: true })).toBeNull();
  });
  it("an unexpected error is INIT_FAILURE before the playbook started, FAILURE agent_error after", () => {
    expect(unexpectedOutcome(new Error("disk full"), false)).toEqual({ status: "INIT_FAILURE", reason: "workspace_failed", detail: "runner-agent: disk full" });
    expect(unexpectedOutcome("odd", true)).toEqual({ status: "FAILURE", reason: "agent_error", detail: "runner-agent: odd" });
  });
  it("Ansible's error is found in its stderr, workspace paths hidden", () => {
    const ws = { dir: "/w/x-1", project: "/w/x-1/project" };
    expect(ansibleError("noise\nERROR! the role 'x' was not found in /w/x-1/project/roles\n", ws)).toBe("ERROR! the role 'x' was not found in roles");
    expect(ansibleError("[WARNING]: in /w/x-1/private\n", ws)).toBe("[WARNING]: in <workspace>/private");
    expect(ansibleError(`ERROR! ${"x".repeat(3000)}`, ws)).toHaveLength(2002);
  });
});
