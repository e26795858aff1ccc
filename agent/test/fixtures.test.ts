// The shared test fixtures themselves (the end-to-end suite reuses them): sshd, git server, /proc.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitServer, type GitServer } from "../../test/fixtures/git-server.ts";
import { listProcesses, processesMatching, processesWithEnv } from "../../test/fixtures/processes.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";

let sshd: SshServer;
let git: GitServer;
const tmp = mkdtempSync(join(tmpdir(), "rnr-fix-"));
beforeAll(async () => {
  [sshd, git] = await Promise.all([
    startSshd(),
    startGitServer([
      { name: "open", files: { "a.txt": "A\n" }, branches: { b: { "b.txt": "B\n" } }, tags: ["t1"] },
      { name: "closed", files: { "a.txt": "A\n" }, auth: { username: "u", password: "p" } },
    ]),
  ]);
});
afterAll(async () => {
  await Promise.all([sshd?.stop(), git?.stop()]);
  rmSync(tmp, { recursive: true, force: true });
});

// Asynchronous on purpose: the git server runs in this process and must keep answering.
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { env: { ...process.env, GIT_TERMINAL_PROMPT: "0", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}
const ssh = (key: string, cmd: string) =>
  run("ssh", [
    "-i",
    key,
    "-p",
    String(sshd.port),
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    `${sshd.user}@127.0.0.1`,
    cmd,
  ]);
const gitCmd = (args: string[]) => run("git", args);

describe("test fixtures", () => {
  it("sshd accepts the client key and refuses another", async () => {
    expect((await ssh(sshd.clientKey.path, "echo ok")).stdout).toBe("ok\n");
    const other = sshd.newClientKey({ authorized: false });
    expect((await ssh(other.path, "echo ok")).status).not.toBe(0);
    expect(Buffer.from(sshd.clientKey.base64, "base64").toString()).toBe(sshd.clientKey.pem);
  });

  it("git server serves shallow clones, branches and tags, and guards the private repository", async () => {
    const dest = join(tmp, "c1");
    expect((await gitCmd(["clone", "-q", "--depth", "1", "--branch", "b", git.url("open"), dest])).status).toBe(0);
    expect((await gitCmd(["-C", dest, "rev-parse", "HEAD"])).stdout.trim()).toBe(git.commit("open", "b"));
    expect((await gitCmd(["clone", "-q", "--depth", "1", "--branch", "t1", git.url("open"), join(tmp, "c2")])).status).toBe(0);
    const denied = await gitCmd(["clone", "-q", git.url("closed"), join(tmp, "c3")]);
    expect(denied.status).not.toBe(0);
    expect(git.requests.some((r) => r.url.startsWith("/closed.git") && r.status === 401)).toBe(true);
    const withAuth = await gitCmd(["clone", "-q", git.url("closed").replace("http://", "http://u:p@"), join(tmp, "c4")]);
    expect(withAuth.status, withAuth.stderr).toBe(0);
  });

  it("git repositories can be cloned over the test sshd", async () => {
    const r = await run("git", ["clone", "-q", sshd.gitUrl(git.path("open")), join(tmp, "c5")], {
      GIT_SSH_COMMAND: `ssh -i ${sshd.clientKey.path} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`,
    });
    expect(r.status, r.stderr).toBe(0);
  });

  it("sshd's stop also ends commands its sessions left running", async () => {
    const own = await startSshd();
    const client = spawn(
      "ssh",
      [
        "-i",
        own.clientKey.path,
        "-p",
        String(own.port),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        `${own.user}@127.0.0.1`,
        "sleep 37.25",
      ],
      { stdio: "ignore" },
    );
    const until = Date.now() + 10_000;
    while (!processesMatching(/^sleep 37\.25$/).length && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    client.kill("SIGKILL"); // the command outlives its connection
    await new Promise((r) => setTimeout(r, 300));
    expect(processesMatching(/^sleep 37\.25$/)).toHaveLength(1);
    await own.stop();
    expect(processesMatching(/^sleep 37\.25$/)).toEqual([]);
  });

  it("process listing sees this process, and finds processes by command line and environment", () => {
    expect(listProcesses().some((p) => p.pid === process.pid)).toBe(true);
    expect(processesMatching(/sshd/).some((p) => p.pid === sshd.pid)).toBe(true);
    expect(processesWithEnv("RUNNER_FIXTURE_TEST_VAR_THAT_NOBODY_SETS")).toEqual([]);
  });
});
