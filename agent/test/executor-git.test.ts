// Repositories: shallow clones over smart HTTP (public and basic-auth), over ssh with a key, over
// dumb HTTP; branches, tags and the default branch; credentials never in argv, URL or output.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Execution } from "../src/executor.ts";
import { startGitServer, TEST_AUTHOR, type GitServer } from "../../test/fixtures/git-server.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import { makeLease, MemorySink, RecordingTransport, trackedLeftovers, workRoot } from "./helpers.ts";
import { Session } from "../src/session.ts";

let git: GitServer;
let sshd: SshServer;
const work = workRoot();
const PASSWORD = "s3cret-Git-Pa55word";
const play = (msg: string) => `- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: "${msg}"\n`;
const localHost = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];

// A `git` on PATH that records its argv and environment size, then runs the real git.
const shimDir = mkdtempSync(join(tmpdir(), "rnr-gitshim-"));
const argvLog = join(shimDir, "argv.log");
writeFileSync(join(shimDir, "git"), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${argvLog}'\nexec /usr/bin/git "$@"\n`);
chmodSync(join(shimDir, "git"), 0o755);

beforeAll(async () => {
  [git, sshd] = await Promise.all([
    startGitServer([
      { name: "public", files: { "site.yml": play("from main"), "other.yml": play("other") }, branches: { dev: { "site.yml": play("from dev") } }, tags: ["v1.0"], message: "First version\n\nWith a body." },
      { name: "private", files: { "deploy/site.yml": play("private repo") }, auth: { username: "deployer", password: PASSWORD } },
      { name: "dumb", files: { "site.yml": play("dumb server") }, dumb: true },
      { name: "broken", files: { "site.yml": "- hosts: all\n  tasks:\n    - name: bad\n      debug: msg=x\n     oops: [\n" } },
      { name: "badmodule", files: { "site.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n    - no.such.module: {}\n" } },
    ]),
    startSshd(),
  ]);
});
afterAll(async () => {
  await Promise.all([git?.stop(), sshd?.stop()]);
  work.remove();
  rmSync(shimDir, { recursive: true, force: true });
});

async function runRepo(repository: Record<string, unknown>, extra: { env?: NodeJS.ProcessEnv; secrets?: string[] } = {}) {
  const lease = makeLease({ repository: repository as never, hosts: localHost }, { secrets: extra.secrets ?? [] });
  const sink = new MemorySink();
  const result = await new Execution(lease, sink, { workRoot: work.dir, env: extra.env }).run();
  const repositoryLog = sink.reports.find((r) => r.repositoryLog)?.repositoryLog;
  return { result, sink, repositoryLog, final: sink.reports.at(-1)! };
}

describe("repositories over HTTP", () => {
  it("clones the default branch shallow and reports the commit that ran", async () => {
    const { result, sink, repositoryLog } = await runRepo({ url: git.url("public"), defaultPlaybook: "site.yml" });
    expect(result.status).toBe("SUCCESS");
    expect(sink.log()).toContain('"msg": "from main"');
    expect(repositoryLog).toEqual({
      commit: git.commit("public", "main"),
      author: TEST_AUTHOR.name,
      author_email: TEST_AUTHOR.email,
      date: Date.parse("2025-01-02T03:04:05Z"),
      message: "First version\n\nWith a body.",
      branch: "main",
    });
    // The repositoryLog went out before the terminal status.
    expect(sink.reports.findIndex((r) => r.repositoryLog)).toBeLessThan(sink.reports.findIndex((r) => r.status === "SUCCESS"));
  });

  it("checks out a branch or a tag when given", async () => {
    const dev = await runRepo({ url: git.url("public"), branch: "dev", defaultPlaybook: "site.yml" });
    expect(dev.sink.log()).toContain('"msg": "from dev"');
    expect(dev.repositoryLog).toMatchObject({ commit: git.commit("public", "dev"), branch: "dev", message: "Changes on dev" });
    const tag = await runRepo({ url: git.url("public"), branch: "v1.0", defaultPlaybook: "other.yml" });
    expect(tag.result.status).toBe("SUCCESS");
    expect(tag.repositoryLog).toMatchObject({ commit: git.commit("public", "main"), branch: "v1.0" });
  });

  it("uses basic-auth credentials through askpass, never in argv, URL, request line or events", async () => {
    writeFileSync(argvLog, "");
    const transport = new RecordingTransport();
    const lease = makeLease(
      { repository: { url: git.url("private"), defaultPlaybook: "deploy/site.yml", credentials: { username: "deployer", password: PASSWORD } }, hosts: localHost },
      { secrets: [PASSWORD] },
    );
    const session = new Session(lease, { transport, executor: { workRoot: work.dir, env: { ...process.env, PATH: `${shimDir}:${process.env.PATH}` } } });
    const result = await session.run();
    expect(result.status).toBe("SUCCESS");
    const argv = readFileSync(argvLog, "utf8");
    expect(argv).toContain("clone --depth 1");
    expect(argv).not.toContain(PASSWORD);
    expect(argv).not.toContain("deployer");
    const seen = git.requests.filter((r) => r.url.startsWith("/private.git"));
    expect(seen.some((r) => r.status === 401 && r.user === null)).toBe(true); // asked...
    expect(seen.some((r) => r.status === 200 && r.user === "deployer")).toBe(true); // ...and answered
    expect(seen.every((r) => !r.url.includes(PASSWORD))).toBe(true);
    expect(transport.allBytes()).not.toContain(PASSWORD);
    expect(trackedLeftovers()).toEqual([]);
  });

  it("ends INIT_FAILURE clone_failed with an actionable reason on a wrong password, without the password", async () => {
    const wrong = "not-the-" + PASSWORD;
    const { result, final } = await runRepo(
      { url: git.url("private"), defaultPlaybook: "deploy/site.yml", credentials: { username: "deployer", password: wrong } },
      { secrets: [wrong] },
    );
    expect(result.status).toBe("INIT_FAILURE");
    expect(final.reason).toBe("clone_failed");
    expect(final.detail).toMatch(/refused the credentials: check repository\.credentials/);
    expect(final.detail).not.toContain(wrong);
  });

  it("moves credentials out of a URL that carries them", async () => {
    writeFileSync(argvLog, "");
    const url = git.url("private").replace("http://", `http://deployer:${PASSWORD}@`);
    const { result } = await runRepo({ url, defaultPlaybook: "deploy/site.yml" }, { env: { ...process.env, PATH: `${shimDir}:${process.env.PATH}` } });
    expect(result.status).toBe("SUCCESS");
    expect(readFileSync(argvLog, "utf8")).not.toContain(PASSWORD);
  });

  it("names a missing branch", async () => {
    const { final } = await runRepo({ url: git.url("public"), branch: "nope", defaultPlaybook: "site.yml" });
    expect(final).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    expect(final.detail).toContain("branch or tag 'nope' does not exist");
  });

  it("names a missing defaultPlaybook and lists the playbooks there are", async () => {
    const { final } = await runRepo({ url: git.url("public"), defaultPlaybook: "deploy.yml" });
    expect(final).toMatchObject({ status: "INIT_FAILURE", reason: "playbook_not_found" });
    expect(final.detail).toMatch(/"deploy\.yml" is not a file in the repository \(branch main, commit [0-9a-f]{12}\); playbooks at the top level: other\.yml, site\.yml/);
  });

  it("refuses a defaultPlaybook outside the repository", async () => {
    const { final } = await runRepo({ url: git.url("public"), defaultPlaybook: "../../etc/passwd" });
    expect(final).toMatchObject({ status: "INIT_FAILURE", reason: "playbook_not_found" });
  });

  it("ends INIT_FAILURE playbook_invalid with Ansible's own message when the playbook does not parse", async () => {
    const { final, sink } = await runRepo({ url: git.url("broken"), defaultPlaybook: "site.yml" });
    expect(final).toMatchObject({ status: "INIT_FAILURE", reason: "playbook_invalid" });
    expect(final.detail).toMatch(/^ERROR! .*(Syntax Error|YAML)/s);
    expect(final.detail).toContain("'site.yml'"); // the path relative to the repository, not the workspace
    expect(sink.statuses()).toEqual(["INIT_FAILURE"]); // never RUNNING
    const bad = await runRepo({ url: git.url("badmodule"), defaultPlaybook: "site.yml" });
    expect(bad.final).toMatchObject({ status: "INIT_FAILURE", reason: "playbook_invalid" });
    expect(bad.final.detail).toMatch(/couldn't resolve module\/action 'no\.such\.module'/);
  });

  it("falls back to a full clone from a server that only speaks dumb HTTP", async () => {
    const { result, sink, repositoryLog } = await runRepo({ url: git.url("dumb"), defaultPlaybook: "site.yml" });
    expect(result.status).toBe("SUCCESS");
    expect(sink.log()).toContain("dumb server");
    expect(repositoryLog!.commit).toBe(git.commit("dumb", "main"));
  });

  it("refuses local paths and file:// URLs", async () => {
    for (const url of ["file:///etc", "/srv/repo.git", "ext::sh -c touch% /tmp/pwned"]) {
      const { final } = await runRepo({ url, defaultPlaybook: "site.yml" });
      expect(final, url).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    }
  });
});

describe("repositories over ssh", () => {
  it("clones with the given key (0600 file, GIT_SSH_COMMAND) and reports the commit", async () => {
    const { result, repositoryLog, sink } = await runRepo({
      url: sshd.gitUrl(git.path("public")),
      defaultPlaybook: "site.yml",
      credentials: { sshPrivateKey: sshd.clientKey.base64 },
    });
    expect(result.status).toBe("SUCCESS");
    expect(sink.log()).toContain("from main");
    expect(repositoryLog!.commit).toBe(git.commit("public", "main"));
  });

  it("fails with a clear reason when the server refuses the key", async () => {
    const stranger = sshd.newClientKey({ authorized: false });
    const { final } = await runRepo({ url: sshd.gitUrl(git.path("public")), defaultPlaybook: "site.yml", credentials: { sshPrivateKey: stranger.base64 } });
    expect(final).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    expect(final.detail).toContain("the ssh server refused the key");
  });

  it("with strict host key checking refuses an unknown host", async () => {
    const lease = makeLease({ repository: { url: sshd.gitUrl(git.path("public")), defaultPlaybook: "site.yml", credentials: { sshPrivateKey: sshd.clientKey.base64 } }, hosts: localHost });
    const sink = new MemorySink();
    const empty = join(shimDir, "known_hosts");
    writeFileSync(empty, "");
    await new Execution(lease, sink, { workRoot: work.dir, hostKeyChecking: "strict", knownHosts: empty }).run();
    expect(sink.reports.at(-1)).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    expect(sink.reports.at(-1)!.detail).toContain("host key is not known");
  });
});
