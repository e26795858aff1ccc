import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { call, execution, held, lease, newAgent, type TestAgent } from "./agent-fixtures";

/**
 * Status reports carry values from the playbook (host names, error text, commit messages): they are
 * stored and answered whatever they look like, and only a structurally wrong report is a 400 (a
 * refused terminal report would lose the run's outcome).
 */
const ALIAS = "reports";
const COUNTERS = '{"ok":1,"changed":0,"failed":0,"skipped":0,"unreachable":0,"rescued":0,"ignored":0}';
const FAILED = '{"ok":0,"changed":0,"failed":1,"skipped":0,"unreachable":0,"rescued":0,"ignored":0}';
/** Host names that are also names of Object.prototype's members. */
const ODD_HOSTS = ["__proto__", "constructor", "toString", "hasOwnProperty", "__defineGetter__", "valueOf"];

const fields = (r: { json: any }) => ((r.json?.errors ?? []) as { field: string }[]).map((e) => e.field).sort();

/** A started execution of a fresh job, RUNNING on `agent`; answers its ids. */
async function running(agent: TestAgent): Promise<{ id: string; jobId: string; path: string }> {
  const admin = await token([ALIAS], "admin");
  const job = await api("POST", `/jobs/${ALIAS}`, { token: admin, body: { playbook: btoa("- hosts: all\n  tasks: []\n"), hosts: [{ id: "web1" }] } });
  const id = (await api("POST", `/jobs/${ALIAS}/${job.json.id}/start`, { token: admin })).json.execution_id as string;
  expect((await lease(agent)).json.executionId).toBe(id);
  expect((await call(agent, "POST", `/agent/executions/${id}/status`, { ...held(id), status: "RUNNING" })).status).toBe(200);
  return { id, jobId: job.json.id, path: `/jobs/${ALIAS}/${job.json.id}/executions/${id}` };
}

/** The report as raw JSON text: an object literal with a `__proto__` key would set a prototype instead. */
function rawReport(id: string, rest: string): string {
  const { attempt, leaseId } = held(id);
  return `{"attempt":${attempt},"leaseId":"${leaseId}",${rest}}`;
}

describe("host stats keyed by any host name", () => {
  it("a report's hostStats with __proto__, constructor, … are stored and answered like any other host", async () => {
    const agent = await newAgent(ALIAS);
    const { id, jobId, path } = await running(agent);
    const stats = ODD_HOSTS.map((h) => `"${h}":${h === "__proto__" ? FAILED : COUNTERS}`).join(",");
    const r = await call(agent, "POST", `/agent/executions/${id}/status`, rawReport(id, `"status":"FAILURE","hostStats":{${stats},"web1":${COUNTERS}}`));
    expect(r.status, r.text).toBe(200);

    const admin = await token([ALIAS], "viewer");
    const one = await api("GET", path, { token: admin });
    expect(one.status).toBe(200);
    expect(Object.keys(one.json.host_stats).sort()).toEqual([...ODD_HOSTS, "web1"].sort());
    expect(Object.getOwnPropertyDescriptor(one.json.host_stats, "__proto__")!.value).toEqual(JSON.parse(FAILED));
    expect(one.json.host_stats.constructor).toEqual(JSON.parse(COUNTERS));
    expect(one.json.failed_hosts).toEqual(["__proto__"]);
    expect(one.json.status).toBe("FAILURE");
    // The list answers from the D1 index: the same.
    const list = await api("GET", `/jobs/${ALIAS}/${jobId}/executions`, { token: admin });
    expect(Object.keys(list.json.results[0].host_stats).sort()).toEqual([...ODD_HOSTS, "web1"].sort());
  });

  it("a playbook_on_stats event with a __proto__ host sets host_stats the same way", async () => {
    const agent = await newAgent(ALIAS);
    const { id, path } = await running(agent);
    const { attempt, leaseId } = held(id);
    const body = `{"attempt":${attempt},"leaseId":"${leaseId}","events":[{"seq":1,"timestamp":1,"event_type":"playbook_on_stats","data":{"hosts":{"__proto__":${FAILED},"web1":${COUNTERS}}}}]}`;
    expect((await call(agent, "POST", `/agent/executions/${id}/events`, body)).json.acceptedThrough).toBe(1);
    const v = (await api("GET", path, { token: await token([ALIAS], "viewer") })).json;
    expect(Object.keys(v.host_stats).sort()).toEqual(["__proto__", "web1"]);
    expect(v.failed_hosts).toEqual(["__proto__"]);
  });
});

describe("unusual values in a report are kept, never refused", () => {
  it("odd detail text, a non-code reason, long host names and a long commit message: 200, and the run ends as reported", async () => {
    const agent = await newAgent(ALIAS);
    const { id, path } = await running(agent);
    const longHost = `h${"x".repeat(400)}`;
    const detail = `exit 2\u0000\u0007\u001b[31mred\u001b[0m \ud800 lone surrogate, ${"é€😀".repeat(30_000)}`;
    const body = {
      ...held(id),
      status: "FAILURE",
      reason: "Playbook Failed!",
      detail,
      exitCode: 2,
      failedHosts: [longHost],
      hostStats: { [longHost]: JSON.parse(FAILED) },
      repositoryLog: { commit: "c".repeat(300), message: "m".repeat(20_000), author: "a\u0000b" },
    };
    const r = await call(agent, "POST", `/agent/executions/${id}/status`, body);
    expect(r.status, r.text.slice(0, 300)).toBe(200);
    const v = await execution(id);
    expect(v).toMatchObject({ status: "FAILURE", reason: "playbook_failed", failed_hosts: [longHost] });
    expect(v.repository_log!.message!.length).toBeLessThanOrEqual(10_000);
    const log = await api("GET", `${path}/log`, { token: await token([ALIAS], "viewer") });
    expect(log.text).toContain("exit 2");
  });

  it("a reason with nothing usable is dropped (the default reason applies)", async () => {
    const agent = await newAgent(ALIAS);
    const { id } = await running(agent);
    expect((await call(agent, "POST", `/agent/executions/${id}/status`, { ...held(id), status: "FAILURE", reason: "!!! 42" })).status).toBe(200);
    expect(await execution(id)).toMatchObject({ status: "FAILURE", reason: "playbook_failed" });
  });

  it("a structurally wrong report is still a 400 naming the field, and changes nothing", async () => {
    const agent = await newAgent(ALIAS);
    const { id } = await running(agent);
    const bad: [Record<string, unknown>, string[]][] = [
      [{ status: "DONE" }, ["status"]],
      [{ status: "SUCCESS", hostStats: "web1" }, ["hostStats"]],
      [
        { status: "SUCCESS", hostStats: { web1: { ok: -1 } } },
        [
          "hostStats.web1.changed",
          "hostStats.web1.failed",
          "hostStats.web1.ignored",
          "hostStats.web1.ok",
          "hostStats.web1.rescued",
          "hostStats.web1.skipped",
          "hostStats.web1.unreachable",
        ],
      ],
      [{ status: "SUCCESS", failedHosts: "web1" }, ["failedHosts"]],
      [{ status: "SUCCESS", detail: 5 }, ["detail"]],
      [{ status: "SUCCESS", reason: ["x"] }, ["reason"]],
    ];
    for (const [patch, named] of bad) {
      const r = await call(agent, "POST", `/agent/executions/${id}/status`, { ...held(id), ...patch });
      expect(r.status, JSON.stringify(patch)).toBe(400);
      expect(fields(r)).toEqual(named);
    }
    expect(await execution(id)).toMatchObject({ status: "RUNNING", host_stats: {} });
  });
});
