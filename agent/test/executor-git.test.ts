// Repositories: shallow clones over smart HTTP (public and basic-auth), over ssh with a key, over
// dumb HTTP; branches, tags and the default branch; credentials never in argv, URL or output.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Run } from "../src/run.ts";
import { startGitServer, TEST_AUTHOR, type GitServer } from "../../test/fixtures/git-server.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import { listProcesses } from "../../test/fixtures/processes.ts";
import { createLogger } from "../src/log.ts";
import { TRACKING_ENV } from "../src/process-group.ts";
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
// An `ssh` on PATH (GIT_SSH_COMMAND names plain "ssh") that records its argv and the mode of its -i key.
const sshLog = join(shimDir, "ssh.log");
writeFileSync(
  join(shimDir, "ssh"),
  `#!/bin/sh\nprintf 'ARGV %s\\n' "$*" >> '${sshLog}'\nprev=\nfor a in "$@"; do [ "$prev" = -i ] && stat -c 'KEY %a %n' "$a" >> '${sshLog}'; prev=$a; done\nexec /usr/bin/ssh "$@"\n`,
);
chmodSync(join(shimDir, "ssh"), 0o755);

beforeAll(async () => {
  [git, sshd] = await Promise.all([
    startGitServer([
      {
        name: "public",
        files: { "site.yml": play("from main"), "other.yml": play("other") },
        branches: { dev: { "site.yml": play("from dev") } },
        tags: ["v1.0"],
        message: "First version\n\nWith a body.",
      },
      { name: "private", files: { "deploy/site.yml": play("private repo") }, auth: { username: "deployer", password: PASSWORD } },
      { name: "dumb", files: { "site.yml": play("dumb server") }, dumb: true },
      { name: "broken", files: { "site.yml": "- hosts: all\n  tasks:\n    - name: bad\n      debug: msg=x\n     oops: [\n" } },
      { name: "badmodule", files: { "site.yml": "- hosts: all\n  gather_facts: false\n  tasks:\n    - no.such.module: {}\n" } },
    ]),
    startSshd(),
  ]);
});
// Whatever a run ended with (clone refused, playbook missing or unparsable), its workspace is gone.
afterEach(() => {
  expect(work.leftovers()).toEqual([]);
});
afterAll(async () => {
  await Promise.all([git?.stop(), sshd?.stop()]);
  work.remove();
  rmSync(shimDir, { recursive: true, force: true });
});

async function runRepo(repository: Record<string, unknown>, extra: { env?: NodeJS.ProcessEnv; secrets?: string[] } = {}) {
  const lease = makeLease({ repository: repository as never, hosts: localHost }, { secrets: extra.secrets ?? [] });
  const sink = new MemorySink();
  const result = await new Run(lease, sink, { workRoot: work.dir, env: extra.env }).run();
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

  it("uses basic-auth credentials through a credential helper: never in any process's argv or environment, the URL, the log or events", async () => {
    // Every process of the clone, seen in /proc: polled, and at each request the git server gets
    // (git and git-remote-http are alive then). GIT_TRACE lists every command git itself runs,
    // credential helpers included, however short-lived.
    const seen = new Map<number, { cmdline: string; environ: string }>();
    const scan = () => {
      for (const p of listProcesses()) {
        try {
          const environ = readFileSync(`/proc/${p.pid}/environ`, "latin1");
          if (environ.includes(`${TRACKING_ENV}=${process.pid}:`)) seen.set(p.pid, { cmdline: p.cmdline, environ });
        } catch {
          /* gone */
        }
      }
    };
    const poll = setInterval(scan, 10);
    const seenAtRequests = () => git.requests.length;
    const before = seenAtRequests();
    const onRequest = git.onRequest;
    git.onRequest = scan;
    const trace = join(shimDir, "git-trace.log");
    writeFileSync(argvLog, "");
    writeFileSync(trace, "");
    const logLines: string[] = [];
    const transport = new RecordingTransport();
    const lease = makeLease(
      {
        repository: { url: git.url("private"), defaultPlaybook: "deploy/site.yml", credentials: { username: "deployer", password: PASSWORD } },
        hosts: localHost,
      },
      { secrets: [PASSWORD] },
    );
    const env = { ...process.env, PATH: `${shimDir}:${process.env.PATH}`, GIT_TRACE: trace };
    const log = createLogger({ level: "debug", write: (l) => logLines.push(l) });
    const session = new Session(lease, { transport, executor: { workRoot: work.dir, env, log }, log });
    let result;
    try {
      result = await session.run();
    } finally {
      clearInterval(poll);
      git.onRequest = onRequest;
    }
    expect(result.status).toBe("SUCCESS");
    expect(seenAtRequests() - before).toBeGreaterThanOrEqual(3);
    const cmdlines = [...seen.values()].map((p) => p.cmdline);
    expect(cmdlines.some((c) => /clone --depth 1/.test(c))).toBe(true); // the scan did see the clone…
    expect(cmdlines.some((c) => /remote-http/.test(c))).toBe(true);
    for (const p of seen.values()) {
      for (const secret of [PASSWORD, "deployer"]) {
        expect(p.cmdline, p.cmdline).not.toContain(secret); // …and no secret in any of them
        expect(p.environ.includes(secret), `environment of ${p.cmdline}`).toBe(false);
      }
    }
    const traced = readFileSync(trace, "utf8");
    expect(traced).toMatch(/run_command: .*git-credential-helper\.sh.* get/);
    expect(traced).not.toContain(PASSWORD);
    expect(traced).not.toContain("deployer");
    const argv = readFileSync(argvLog, "utf8");
    expect(argv).toContain("clone --depth 1");
    expect(argv).not.toContain(PASSWORD);
    expect(argv).not.toContain("deployer");
    const requests = git.requests.filter((r) => r.url.startsWith("/private.git"));
    expect(requests.some((r) => r.status === 401 && r.user === null)).toBe(true); // asked...
    expect(requests.some((r) => r.status === 200 && r.user === "deployer")).toBe(true); // ...and answered
    expect(requests.every((r) => !r.url.includes(PASSWORD))).toBe(true);
    expect(transport.allBytes()).not.toContain(PASSWORD);
    expect(logLines.join("\n")).toContain("repository cloned");
    expect(logLines.join("\n")).not.toContain(PASSWORD);
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

  it("names a repository that does not exist, and one that wants credentials the job lacks", async () => {
    const missing = await runRepo({ url: git.url("no-such-repo"), defaultPlaybook: "site.yml" });
    expect(missing.final).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    expect(missing.final.detail).toMatch(/no repository at that URL \(or no access to it\)/);
    expect(missing.final.detail).toContain(git.url("no-such-repo"));
    const anonymous = await runRepo({ url: git.url("private"), defaultPlaybook: "deploy/site.yml" });
    expect(anonymous.final).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    expect(anonymous.final.detail).toMatch(/the server asks for credentials: give the job repository\.credentials/);
  });

  it("names a missing branch", async () => {
    const { final } = await runRepo({ url: git.url("public"), branch: "nope", defaultPlaybook: "site.yml" });
    expect(final).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    expect(final.detail).toContain("branch or tag 'nope' does not exist");
  });

  it("names a missing defaultPlaybook and lists the playbooks there are", async () => {
    const { final } = await runRepo({ url: git.url("public"), defaultPlaybook: "deploy.yml" });
    expect(final).toMatchObject({ status: "INIT_FAILURE", reason: "playbook_not_found" });
    expect(final.detail).toMatch(
      /"deploy\.yml" is not a file in the repository \(branch main, commit [0-9a-f]{12}\); playbooks at the top level: other\.yml, site\.yml/,
    );
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
    writeFileSync(sshLog, "");
    const { result, repositoryLog, sink } = await runRepo(
      { url: sshd.gitUrl(git.path("public")), defaultPlaybook: "site.yml", credentials: { sshPrivateKey: sshd.clientKey.base64 } },
      { env: { ...process.env, PATH: `${shimDir}:${process.env.PATH}` } },
    );
    expect(result.status).toBe("SUCCESS");
    expect(sink.log()).toContain("from main");
    expect(repositoryLog!.commit).toBe(git.commit("public", "main"));
    const ssh = readFileSync(sshLog, "utf8");
    expect(ssh).toMatch(/^KEY 600 \S+\/private\/git-key\.pem$/m);
    expect(ssh).toMatch(/^ARGV .*-o BatchMode=yes .*-o IdentitiesOnly=yes .*-o StrictHostKeyChecking=no/m);
    expect(ssh).not.toContain(sshd.clientKey.base64.slice(0, 40));
  });

  it("fails with a clear reason when the server refuses the key", async () => {
    const stranger = sshd.newClientKey({ authorized: false });
    const { final } = await runRepo({ url: sshd.gitUrl(git.path("public")), defaultPlaybook: "site.yml", credentials: { sshPrivateKey: stranger.base64 } });
    expect(final).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    expect(final.detail).toContain("the ssh server refused the key");
  });

  it("with strict host key checking refuses an unknown host", async () => {
    const lease = makeLease({
      repository: { url: sshd.gitUrl(git.path("public")), defaultPlaybook: "site.yml", credentials: { sshPrivateKey: sshd.clientKey.base64 } },
      hosts: localHost,
    });
    const sink = new MemorySink();
    const empty = join(shimDir, "known_hosts");
    writeFileSync(empty, "");
    await new Run(lease, sink, { workRoot: work.dir, hostKeyChecking: "strict", knownHosts: empty }).run();
    expect(sink.reports.at(-1)).toMatchObject({ status: "INIT_FAILURE", reason: "clone_failed" });
    expect(sink.reports.at(-1)!.detail).toContain("host key is not known");
  });

  it("with strict host key checking and the host's key in known_hosts, clones and runs over ssh; a host not in it is unreachable", async () => {
    const knownHosts = join(shimDir, "known_hosts_ok");
    const hostKey = readFileSync(join(sshd.dir, "host_key.pub"), "utf8").split(" ").slice(0, 2).join(" ");
    writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${hostKey}\n`);
    const overSsh = { id: "web1", hostVars: sshd.hostVars() };
    const strict = { workRoot: work.dir, hostKeyChecking: "strict" as const, knownHosts };
    const lease = makeLease({
      repository: { url: sshd.gitUrl(git.path("public")), defaultPlaybook: "other.yml", credentials: { sshPrivateKey: sshd.clientKey.base64 } },
      sshPrivateKey: sshd.clientKey.base64,
      hosts: [overSsh],
    });
    // other.yml runs with connection: local; this play reaches web1 over ssh.
    const sink = new MemorySink();
    const r = await new Run(lease, sink, strict).run();
    expect(r.status, r.detail).toBe("SUCCESS");
    const ssh = makeLease({
      playbook: Buffer.from("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n").toString("base64"),
      sshPrivateKey: sshd.clientKey.base64,
      hosts: [overSsh],
    });
    const ok = new MemorySink();
    expect((await new Run(ssh, ok, strict).run()).status).toBe("SUCCESS");
    const empty = join(shimDir, "known_hosts_empty");
    writeFileSync(empty, "");
    const refused = new MemorySink();
    expect((await new Run(ssh, refused, { ...strict, knownHosts: empty }).run()).status).toBe("FAILURE");
    expect(refused.events.find((e) => e.event_type === "runner_on_unreachable")!.stdout).toMatch(/Host key verification failed/);
  });
});
