import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { ProblemError } from "../../worker/lib/problem";
import { AGENT, executionIn, failure, newJob, object, ref, report, start, stub } from "./execution-fixtures";

/**
 * The state machine, cell by cell: every (state, action) pair the design allows leads where
 * docs/DESIGN.md says, and every other pair is refused (409) without changing anything. The expected
 * tables are written out here from the design, not read from the implementation.
 */
const ALIAS = "trans";
const ALL = ["PENDING", "INITIALIZING", "RUNNING", "STOPPING", "KILLING", "SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"] as const;
type S = (typeof ALL)[number];
const LEASED: S[] = ["INITIALIZING", "RUNNING", "STOPPING", "KILLING"];

let jobId: string;
let user: string;
beforeAll(async () => {
  jobId = await newJob(ALIAS, { hosts: [{ id: "web1" }, { id: "web2" }] });
  user = await token([ALIAS], "user");
});

const USER_ACTIONS: Record<"stop" | "kill" | "restart", Partial<Record<S, S>>> = {
  stop: { PENDING: "STOPPED", INITIALIZING: "STOPPING", RUNNING: "STOPPING", STOPPING: "STOPPING" },
  kill: { PENDING: "KILLED", INITIALIZING: "KILLING", RUNNING: "KILLING", STOPPING: "KILLING", KILLING: "KILLING" },
  restart: { FAILURE: "PENDING", INIT_FAILURE: "PENDING" },
};

describe("user actions in every state (through the API)", () => {
  for (const [action, table] of Object.entries(USER_ACTIONS)) {
    for (const from of ALL) {
      const to = table[from];
      it(`${action} in ${from} → ${to ?? "409"}`, async () => {
        const id = await executionIn(ALIAS, jobId, from);
        const before = await stub(id).view();
        const r = await api("POST", `/jobs/${ALIAS}/${jobId}/executions/${id}/${action}`, { token: user });
        if (to) {
          expect(r.status, r.text).toBe(200);
          expect(r.json.status).toBe(to);
          expect((await stub(id).view()).status).toBe(to);
        } else {
          expect(r.status).toBe(409);
          expect(r.headers.get("content-type")).toContain("application/problem+json");
          expect(r.json.detail).toContain(from);
          expect(await stub(id).view()).toEqual(before);
        }
      });
    }
  }
});

/** Agent reports from each leased state; STOPPING and KILLING here come from RUNNING (the playbook started). */
const REPORTS: Record<string, Partial<Record<S, S>>> = {
  INITIALIZING: { INITIALIZING: "INITIALIZING", STOPPING: "STOPPING", KILLING: "KILLING" },
  RUNNING: { INITIALIZING: "RUNNING", RUNNING: "RUNNING", STOPPING: "STOPPING", KILLING: "KILLING" },
  SUCCESS: { RUNNING: "SUCCESS", STOPPING: "SUCCESS", KILLING: "SUCCESS" },
  FAILURE: { RUNNING: "FAILURE", STOPPING: "FAILURE", KILLING: "FAILURE" },
  INIT_FAILURE: { INITIALIZING: "INIT_FAILURE", STOPPING: "INIT_FAILURE", KILLING: "INIT_FAILURE" },
  STOPPED: { INITIALIZING: "STOPPED", RUNNING: "STOPPED", STOPPING: "STOPPED", KILLING: "STOPPED" },
  KILLED: { INITIALIZING: "KILLED", RUNNING: "KILLED", STOPPING: "KILLED", KILLING: "KILLED" },
};

describe("agent reports in every leased state", () => {
  for (const [reported, table] of Object.entries(REPORTS)) {
    for (const from of LEASED) {
      const to = table[from];
      it(`report ${reported} in ${from} → ${to ?? "409"}`, async () => {
        const id = await executionIn(ALIAS, jobId, from);
        const before = await stub(id).view();
        const call = report(id, { status: reported as never });
        if (to) {
          const answer = await call;
          expect(answer.status).toBe(to);
          expect(answer.command).toBe(to === "STOPPING" ? "stop" : to === "KILLING" ? "kill" : null);
        } else {
          expect(await failure(call)).toMatchObject({ status: 409 });
          expect(await stub(id).view()).toEqual(before);
        }
      });
    }
  }

  it("the reason of the end follows what caused it", async () => {
    const stopped = await executionIn(ALIAS, jobId, "STOPPING");
    await report(stopped, { status: "STOPPED" });
    expect((await stub(stopped).view()).reason).toBe("stopped");
    const killed = await executionIn(ALIAS, jobId, "KILLING");
    await report(killed, { status: "KILLED" });
    expect((await stub(killed).view()).reason).toBe("killed");
    const failed = await executionIn(ALIAS, jobId, "RUNNING");
    await report(failed, { status: "FAILURE", reason: "playbook_failed", detail: "exit 2" });
    expect((await stub(failed).view()).reason).toBe("playbook_failed");
    const init = await executionIn(ALIAS, jobId, "INITIALIZING");
    await report(init, { status: "INIT_FAILURE", reason: "playbook_not_found" });
    expect((await stub(init).view()).reason).toBe("playbook_not_found");
    const ok = await executionIn(ALIAS, jobId, "RUNNING");
    await report(ok, { status: "SUCCESS" });
    expect((await stub(ok).view()).reason).toBeNull();
  });
});

describe("release", () => {
  const RELEASE: Partial<Record<S, S>> = { INITIALIZING: "PENDING", KILLING: "KILLED" };
  for (const from of LEASED) {
    const to = RELEASE[from];
    it(`release in ${from}${from === "STOPPING" ? " (playbook started)" : ""} → ${to ?? "409"}`, async () => {
      const id = await executionIn(ALIAS, jobId, from);
      const call = stub(id).release(AGENT, await ref(id));
      if (to) {
        await call;
        const v = await stub(id).view();
        expect(v.status).toBe(to);
        if (to === "PENDING") expect(v.agent_id).toBeNull();
      } else expect(await failure(call)).toMatchObject({ status: 409 });
    });
  }

  it("release in STOPPING before the playbook started ends it STOPPED", async () => {
    const id = await executionIn(ALIAS, jobId, "INITIALIZING");
    await stub(id).stop({ accountAlias: ALIAS }, 0);
    await stub(id).release(AGENT, await ref(id));
    expect((await stub(id).view()).status).toBe("STOPPED");
  });

  it("a released execution can be leased again, by another agent", async () => {
    const id = await executionIn(ALIAS, jobId, "INITIALIZING");
    const first = await ref(id);
    await stub(id).release(AGENT, first);
    const lease = await stub(id).grantLease("agent-2");
    expect(lease).toMatchObject({ executionId: id, attempt: 1 });
    expect((await stub(id).view()).agent_id).toBe("agent-2");
    // The first agent no longer holds it.
    expect(await failure(stub(id).heartbeat(AGENT, first))).toMatchObject({ status: 409, extensions: { command: "abandon" } });
  });
});

describe("lease", () => {
  for (const from of ALL) {
    it(`grantLease in ${from} → ${from === "PENDING" ? "INITIALIZING" : "null"}`, async () => {
      const id = await executionIn(ALIAS, jobId, from);
      const lease = await stub(id).grantLease("agent-9");
      if (from === "PENDING") {
        expect(lease).not.toBeNull();
        expect((await stub(id).view()).status).toBe("INITIALIZING");
      } else {
        expect(lease).toBeNull();
        expect((await stub(id).view()).status).toBe(from);
      }
    });
  }

  it("a job deleted before the lease ends the execution INIT_FAILURE (job_not_found)", async () => {
    const doomed = await newJob(ALIAS);
    const id = await start(ALIAS, doomed);
    await env.DB.prepare("DELETE FROM jobs WHERE id = ?").bind(doomed).run();
    expect(await stub(id).grantLease(AGENT)).toBeNull();
    const v = await stub(id).view();
    expect(v.status).toBe("INIT_FAILURE");
    expect(v.reason).toBe("job_not_found");
  });
});

describe("calls from an agent that does not hold the lease answer 409 abandon", () => {
  for (const from of ["PENDING", "SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"] as S[]) {
    it(`in ${from}`, async () => {
      const id = await executionIn(ALIAS, jobId, from);
      const abandon = { status: 409, extensions: { command: "abandon" } };
      expect(await failure(stub(id).heartbeat(AGENT, await ref(id)))).toMatchObject(abandon);
      expect(await failure(stub(id).uploadEvents(AGENT, { ...(await ref(id)), events: [] }))).toMatchObject(abandon);
      expect(await failure(stub(id).release(AGENT, await ref(id)))).toMatchObject(abandon);
      expect(await failure(report(id, { status: "RUNNING" }))).toMatchObject(abandon);
    });
  }

  it("another agent, or the right agent with another attempt", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    const abandon = { status: 409, extensions: { command: "abandon" } };
    expect(await failure(stub(id).heartbeat("someone-else", await ref(id)))).toMatchObject(abandon);
    expect(await failure(stub(id).heartbeat(AGENT, { ...(await ref(id)), attempt: 2 }))).toMatchObject(abandon);
    expect(await failure(report(id, { status: "SUCCESS" }, "someone-else"))).toMatchObject(abandon);
    expect((await stub(id).view()).status).toBe("RUNNING");
    expect(await stub(id).heartbeat(AGENT, await ref(id))).toMatchObject({ command: null });
  });

  it("a retried terminal report (its answer was lost) is acknowledged, not abandoned", async () => {
    const id = await executionIn(ALIAS, jobId, "SUCCESS");
    expect(await report(id, { status: "SUCCESS" })).toMatchObject({ status: "SUCCESS", command: null });
    expect(await failure(report(id, { status: "FAILURE" }))).toMatchObject({ status: 409, extensions: { command: "abandon" } });
  });
});

describe("restart", () => {
  it("appends a timer, counts the attempt, limits the run to the failed hosts, and retires the old attempt", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await report(id, {
      status: "FAILURE",
      hostStats: {
        web1: { ok: 1, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 },
        web2: { ok: 0, changed: 0, failed: 1, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 },
      },
      failedHosts: ["web2"],
    });
    const old = await ref(id);
    const failed = await stub(id).view();
    expect(failed.timers).toHaveLength(1);
    expect(failed.timers[0]!.end).not.toBeNull();
    const r = await api("POST", `/jobs/${ALIAS}/${jobId}/executions/${id}/restart`, { token: user });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ status: "PENDING", attempt: 2, trigger: "restart", reason: null, agent_id: null });
    expect(r.json.timers).toHaveLength(2);
    expect(r.json.timers[1].end).toBeNull();
    const lease = await stub(id).grantLease("agent-2");
    expect(lease).toMatchObject({ attempt: 2, limit: ["web2"] });
    expect(await failure(stub(id).heartbeat(AGENT, old))).toMatchObject({ status: 409, extensions: { command: "abandon" } });
    await stub(id).report("agent-2", { ...(await ref(id)), status: "RUNNING" });
    await stub(id).report("agent-2", {
      ...(await ref(id)),
      status: "SUCCESS",
      hostStats: { web2: { ok: 1, changed: 1, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 } },
      failedHosts: [],
    });
    const done = await stub(id).view();
    expect(done.status).toBe("SUCCESS");
    expect(done.failed_hosts).toEqual([]);
    // The host that was not rerun keeps its counters.
    expect(done.host_stats.web1!.ok).toBe(1);
    expect(done.host_stats.web2!.changed).toBe(1);
    expect(done.timers.every((t) => t.end !== null)).toBe(true);
  });
});

describe("status events", () => {
  it("every status change is an execution_status event, in order (with why it waited while PENDING)", async () => {
    const id = await executionIn(ALIAS, jobId, "RUNNING");
    await stub(id).stop({ accountAlias: ALIAS }, 0);
    await report(id, { status: "STOPPED" });
    const { results } = await stub(id).events(undefined, 0, 0, 100);
    expect(results.map((e) => [e.sequence, e.event_type, JSON.parse(e.data!).status])).toEqual([
      [1, "execution_status", "PENDING"],
      // Told by the dispatcher before the start was answered (the account has no agents: the shared pool, which has none either).
      [2, "execution_waiting", "PENDING"],
      [3, "execution_status", "INITIALIZING"],
      [4, "execution_status", "RUNNING"],
      [5, "execution_status", "STOPPING"],
      [6, "execution_status", "STOPPED"],
    ]);
  });
});

describe("refusals over RPC", () => {
  it("cross as an Outcome answer (not a rejection) and come back from the client as the ProblemError they were", async () => {
    const id = await executionIn(ALIAS, jobId, "SUCCESS");
    const raw = await object(id).kill({ accountAlias: ALIAS });
    expect(raw).toMatchObject({ ok: false, problem: { status: 409, title: "Conflict" } });
    expect(await object(id).heartbeat(AGENT, await ref(id))).toMatchObject({ ok: false, problem: { status: 409, extensions: { command: "abandon" } } });
    expect(await object(id).view({ accountAlias: "someone-else" })).toMatchObject({ ok: false, problem: { status: 404 } });
    expect(await object(id).view({ accountAlias: ALIAS })).toMatchObject({ ok: true, value: { execution_id: id, status: "SUCCESS" } });
    const thrown = await failure(stub(id).kill({ accountAlias: ALIAS }));
    expect(thrown).toBeInstanceOf(ProblemError);
    expect(thrown).toMatchObject({ status: 409, message: expect.stringContaining("SUCCESS") });
  });
});
