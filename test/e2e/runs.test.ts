// End-to-end over HTTP only: real wrangler dev, real runner-agent, real sshd, real git over HTTP.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitServer, type GitServer } from "../fixtures/git-server";
import { processesMatching, waitUntilGone } from "../fixtures/processes";
import { startSshd, type SshServer } from "../fixtures/sshd";
import { b64, isTerminal, Stack } from "./stack";

const A = "e2e";
let stack: Stack;
let sshd: SshServer;
let git: GitServer;
let token: string;

const PLAY = (tasks: string, hosts = "all") => `- hosts: ${hosts}\n  gather_facts: false\n  tasks:\n${tasks}`;
const TWO_TASKS = PLAY(
  "    - name: say hello\n      ansible.builtin.debug:\n        msg: hello from e2e\n    - name: touch a file\n      ansible.builtin.command: echo changed-it\n",
);

/** Three inventory hosts that are all the test sshd, reached with the job's key. */
function sshHosts(ids: string[]) {
  return ids.map((id) => ({ id, hostVars: sshd.hostVars() }));
}

/** Reads an SSE stream until it closes; answers the concatenated data lines. */
async function followLog(path: string): Promise<{ data: string; events: string[] }> {
  const res = await fetch(stack.url + path, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let raw = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    raw += dec.decode(value, { stream: true });
  }
  const events = raw.split("\n\n").filter(Boolean);
  const data = events
    .flatMap((e) =>
      e
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")),
    )
    .join("\n");
  return { data, events };
}

async function createJob(body: Record<string, unknown>, immediate = false) {
  const r = await stack.call("POST", `/jobs/${A}?immediate=${immediate}`, token, body);
  expect(r.status, r.text).toBe(200);
  return r.json;
}

beforeAll(async () => {
  [sshd, git] = await Promise.all([
    startSshd(),
    startGitServer([
      {
        name: "site",
        files: { "site.yml": TWO_TASKS, "README.md": "e2e repo\n" },
        message: "e2e: the site playbook",
      },
    ]),
  ]);
  stack = await new Stack().start();
  token = await stack.token([A]);
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  await Promise.all([sshd?.stop(), git?.stop()]);
});

describe("end-to-end runs (happy)", () => {
  it("runs an inline playbook over real SSH with immediate=true and follows the log live to the end", async () => {
    const created = await createJob({ name: "inline", playbook: b64(TWO_TASKS), sshPrivateKey: sshd.clientKey.base64, hosts: sshHosts(["web1"]) }, true);
    expect(created.execution?.status).toBe("PENDING");
    const ex = created.execution;
    const base = `/jobs/${A}/${created.id}/executions/${ex.execution_id}`;

    const log = await followLog(`${base}/log?follow=true`);
    expect(log.data).toContain("TASK [say hello]");
    expect(log.data).toContain("hello from e2e");
    expect(log.data).toMatch(/PLAY RECAP/);

    const done = await stack.waitFor(A, created.id, ex.execution_id, token, isTerminal);
    expect(done.status).toBe("SUCCESS");
    expect(done.host_stats.web1).toMatchObject({ ok: 2, changed: 1, failed: 0, unreachable: 0 });
    expect(done.failed_hosts).toEqual([]);
    expect(done.timers).toHaveLength(1);
    expect(done.timers[0].end).toBeGreaterThanOrEqual(done.timers[0].start);

    const events = await stack.call("GET", `${base}/events?size=100`, token);
    expect(events.status).toBe(200);
    const types = events.json.results.map((e: any) => e.event_type);
    expect(types).toContain("playbook_on_start");
    expect(types).toContain("runner_on_ok");
    expect(types).toContain("playbook_on_stats");
    const seqs = events.json.results.map((e: any) => e.sequence);
    expect(seqs).toEqual(seqs.map((_: number, i: number) => i + 1));
    // The key given in the job never comes back in events or the log.
    expect(events.text).not.toContain(sshd.clientKey.base64);
    const plain = await stack.call("GET", `${base}/log`, token);
    expect(plain.headers.get("content-type")).toContain("text/plain");
    expect(plain.text).toContain("hello from e2e");
    expect(plain.text).not.toContain("PRIVATE KEY");
  });

  it("streams the plain-text follow live to a client that accepts gzip (what fetch and browsers send), not in one piece at the end", async () => {
    const slow =
      "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: first\n      ansible.builtin.debug:\n        msg: early line\n    - name: wait\n      ansible.builtin.command: sleep 4\n";
    const created = await createJob({ name: "plain-follow", playbook: b64(slow), sshPrivateKey: sshd.clientKey.base64, hosts: sshHosts(["web1"]) }, true);
    const ex = created.execution;
    const res = await fetch(`${stack.url}/jobs/${A}/${created.id}/executions/${ex.execution_id}/log?follow=true`, {
      headers: { authorization: `Bearer ${token}`, "accept-encoding": "gzip, br" },
    });
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(res.headers.get("content-encoding") ?? "identity").toBe("identity");
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = "";
    let statusAtEarlyLine: string | null = null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (statusAtEarlyLine === null && text.includes("early line")) {
        statusAtEarlyLine = (await stack.call("GET", `/jobs/${A}/${created.id}/executions/${ex.execution_id}`, token)).json.status;
      }
    }
    // The line arrived while the 4 s task still ran: had the answer been held back, it would have come with the end.
    expect(statusAtEarlyLine).toBe("RUNNING");
    expect(text).toMatch(/PLAY RECAP/);
    expect((await stack.waitFor(A, created.id, ex.execution_id, token, isTerminal)).status).toBe("SUCCESS");
  });

  it("runs a playbook from a local git repository and reports the commit that ran", async () => {
    const job = await createJob({
      name: "from git",
      repository: { url: git.url("site"), branch: "main", defaultPlaybook: "site.yml" },
      sshPrivateKey: sshd.clientKey.base64,
      hosts: sshHosts(["web1"]),
    });
    const start = await stack.call("POST", `/jobs/${A}/${job.id}/start`, token, {});
    expect(start.status, start.text).toBe(200);
    const done = await stack.waitFor(A, job.id, start.json.execution_id, token, isTerminal);
    expect(done.status).toBe("SUCCESS");
    expect(done.repository_log.commit).toBe(git.commit("site", "main"));
    expect(done.repository_log.message).toContain("e2e: the site playbook");
    expect(done.repository_log.branch).toBe("main");
  });

  it("fails on one host of three, then a restart reruns only that host", async () => {
    // web2 fails until a marker file exists; the restart runs after the marker is created.
    const marker = `${sshd.dir}/marker-${Date.now()}`;
    const playbook = PLAY(`    - name: check the marker\n      ansible.builtin.shell: test "{{ inventory_hostname }}" != web2 || test -f ${marker}\n`);
    const job = await createJob({
      name: "one fails",
      playbook: b64(playbook),
      sshPrivateKey: sshd.clientKey.base64,
      hosts: sshHosts(["web1", "web2", "web3"]),
    });
    const start = await stack.call("POST", `/jobs/${A}/${job.id}/start`, token, {});
    const id = start.json.execution_id;
    const failed = await stack.waitFor(A, job.id, id, token, isTerminal);
    expect(failed.status).toBe("FAILURE");
    expect(failed.failed_hosts).toEqual(["web2"]);
    expect(failed.host_stats.web2.failed).toBe(1);
    expect(failed.host_stats.web1.ok).toBe(1);

    const { writeFileSync } = await import("node:fs");
    writeFileSync(marker, "");
    const restart = await stack.call("POST", `/jobs/${A}/${job.id}/executions/${id}/restart`, token, {});
    expect(restart.status, restart.text).toBe(200);
    expect(restart.json.status).toBe("PENDING");
    const again = await stack.waitFor(A, job.id, id, token, (e) => isTerminal(e) && e.timers.length === 2);
    expect(again.status).toBe("SUCCESS");
    expect(again.timers).toHaveLength(2);
    // Only web2 ran the second time.
    const events = await stack.call("GET", `/jobs/${A}/${job.id}/executions/${id}/events?size=100`, token);
    const okAfterRestart = events.json.results.filter((e: any) => e.event_type === "runner_on_ok").map((e: any) => e.host);
    expect(okAfterRestart.filter((h: string) => h === "web2")).toHaveLength(1);
    expect(okAfterRestart.filter((h: string) => h === "web1")).toHaveLength(1);
  });

  it("stops one long run and kills another, leaving no ansible or ssh process behind", async () => {
    const long = PLAY("    - name: wait a long time\n      ansible.builtin.command: sleep 300\n");
    const job = await createJob({ name: "long", playbook: b64(long), sshPrivateKey: sshd.clientKey.base64, hosts: sshHosts(["web1"]) });
    const s1 = (await stack.call("POST", `/jobs/${A}/${job.id}/start`, token, {})).json;
    const s2 = (await stack.call("POST", `/jobs/${A}/${job.id}/start`, token, {})).json;
    await stack.waitFor(A, job.id, s1.execution_id, token, (e) => e.status === "RUNNING");
    await stack.waitFor(A, job.id, s2.execution_id, token, (e) => e.status === "RUNNING");

    const stop = await stack.call("POST", `/jobs/${A}/${job.id}/executions/${s1.execution_id}/stop`, token, { expiryDuration: 5 });
    expect(stop.status, stop.text).toBe(200);
    expect(["STOPPING", "STOPPED"]).toContain(stop.json.status);
    const kill = await stack.call("POST", `/jobs/${A}/${job.id}/executions/${s2.execution_id}/kill`, token, {});
    expect(kill.status, kill.text).toBe(200);

    const stopped = await stack.waitFor(A, job.id, s1.execution_id, token, isTerminal);
    const killed = await stack.waitFor(A, job.id, s2.execution_id, token, isTerminal);
    // The running `sleep 300` task is not finished by SIGINT within 5 s, so the stop escalates
    // to a kill or ends STOPPED; either way it is over well before the task would have ended.
    expect(["STOPPED", "KILLED"]).toContain(stopped.status);
    expect(killed.status).toBe("KILLED");
    // Every process the agent started carries RUNNER_AGENT_TRACKING_ID (ssh control masters too).
    expect(await waitUntilGone(() => stack.trackedProcesses(), 10_000)).toEqual([]);
    expect(processesMatching(/ansible-playbook/).filter((p) => p.cmdline.includes(stack.dir))).toEqual([]);
  });
});
