// Inventory and options: keys as 0600 files (host key over job key), hostVars, properties as an
// extra-vars file, tags, check and diff, the account inventory with groups. A wrapper around
// ansible-playbook records the command line and the private files it was given.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Run } from "../src/run.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import { b64, makeLease, MemorySink, workRoot } from "./helpers.ts";

let sshd: SshServer;
const work = workRoot();
const tmp = mkdtempSync(join(tmpdir(), "rnr-inv-"));
const wrapper = join(tmp, "ansible-playbook-wrapper");
const record = join(tmp, "record.txt");
writeFileSync(
  wrapper,
  `#!/bin/sh
printf 'ARGV %s\\n' "$*" > '${record}'
for a in "$@"; do case "$a" in */private/inventory.json) d=$(dirname "$a");; esac; done
for f in "$d"/*; do stat -c 'FILE %a %n' "$f" >> '${record}'; done
stat -c 'WORKSPACE %a %n' "$(dirname "$d")" "$d" >> '${record}'
exec ansible-playbook "$@"
`,
);
chmodSync(wrapper, 0o755);

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
  work.remove();
  rmSync(tmp, { recursive: true, force: true });
});

async function run(job: Parameters<typeof makeLease>[0], extra: Parameters<typeof makeLease>[1] = {}) {
  const sink = new MemorySink();
  const result = await new Run(makeLease(job, extra), sink, { workRoot: work.dir, ansiblePlaybook: wrapper }).run();
  return { result, sink, final: sink.reports.at(-1)!, recorded: readFileSync(record, "utf8") };
}

describe("inventory", () => {
  it("gives each host its own key and the job's key to the others, all as 0600 files", async () => {
    const stranger = sshd.newClientKey({ authorized: false });
    const { sink, final, recorded } = await run({
      playbook: b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"),
      sshPrivateKey: stranger.base64, // refused by the server
      hosts: [
        { id: "own-key", hostVars: sshd.hostVars(), sshPrivateKey: sshd.clientKey.pem }, // raw PEM accepted too
        { id: "job-key", hostVars: sshd.hostVars() },
      ],
    });
    expect(sink.events.find((e) => e.event_type === "runner_on_ok")?.host).toBe("own-key");
    expect(sink.events.find((e) => e.event_type === "runner_on_unreachable")?.host).toBe("job-key");
    expect(final.failedHosts).toEqual(["job-key"]);
    const files = recorded.split("\n").filter((l) => l.startsWith("FILE"));
    expect(files.some((l) => /FILE 600 .*\/inventory\.json$/.test(l))).toBe(true);
    expect(files.filter((l) => /\/key-\d+\.pem$/.test(l))).toHaveLength(2);
    for (const l of files) expect(l).toMatch(/^FILE 600 /);
    expect(recorded).not.toContain("BEGIN OPENSSH");
    // The workspace and its private directory: 0700, under the work root; gone afterwards.
    const dirs = recorded.split("\n").filter((l) => l.startsWith("WORKSPACE"));
    expect(dirs).toHaveLength(2);
    for (const l of dirs) expect(l).toMatch(new RegExp(`^WORKSPACE 700 ${work.dir}/x-`));
    expect(work.leftovers()).toEqual([]);
  });

  it("passes hostVars and properties (as an @file, not on the command line), tags, check and diff", async () => {
    const target = join(tmp, "created-by-copy.txt");
    const { result, sink, recorded } = await run(
      {
        playbook: b64(`- hosts: all
  gather_facts: false
  tasks:
    - name: show vars
      ansible.builtin.debug:
        msg: "role={{ role }} release={{ release }} nested={{ nested.a }}"
      tags: [deploy]
    - name: write a file
      ansible.builtin.copy:
        content: "release {{ release }}\\n"
        dest: "${target}"
      tags: [deploy]
    - name: untagged
      ansible.builtin.debug:
        msg: should not run
`),
        sshPrivateKey: sshd.clientKey.base64,
        hosts: [{ id: "web1", hostVars: sshd.hostVars({ role: "frontend" }) }],
        properties: { release: "2025.1-secretish", nested: { a: 42 } },
        playbookTags: ["deploy"],
      },
      { check: true, diff: true },
    );
    expect(result.status).toBe("SUCCESS");
    expect(sink.log()).toContain('"msg": "role=frontend release=2025.1-secretish nested=42"');
    expect(sink.events.some((e) => e.task === "untagged")).toBe(false);
    expect(existsSync(target)).toBe(false); // check mode changed nothing
    expect(sink.log()).toMatch(/\+release 2025\.1-secretish/); // diff mode shows the change
    const argv = recorded.split("\n").find((l) => l.startsWith("ARGV"))!;
    expect(argv).toMatch(/--extra-vars @\S+\/private\/extra-vars\.json/);
    expect(argv).toContain("--tags deploy");
    expect(argv).toContain("--check");
    expect(argv).toContain("--diff");
    expect(argv).not.toContain("2025.1-secretish");
  });

  it("uses the account inventory's hosts and groups with useDynamicInventory", async () => {
    const { result, sink } = await run(
      {
        playbook: b64(
          "- hosts: web\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: 'tier={{ tier }} groups={{ group_names | join(\",\") }}'\n",
        ),
        sshPrivateKey: sshd.clientKey.base64,
        hosts: [],
        useDynamicInventory: true,
      },
      {
        inventory: {
          hosts: [
            { id: "w1", groups: ["web"], hostVars: sshd.hostVars({ tier: "front" }) },
            { id: "w2", groups: ["web", "eu"], hostVars: sshd.hostVars({ tier: "front2" }) },
            { id: "d1", groups: ["db"], hostVars: sshd.hostVars({ tier: "data" }) },
          ],
        },
      },
    );
    expect(result.status).toBe("SUCCESS");
    const oks = sink.events.filter((e) => e.event_type === "runner_on_ok");
    expect(oks.map((e) => e.host).sort()).toEqual(["w1", "w2"]);
    expect(sink.log()).toContain("tier=front2 groups=eu,web");
  });

  it("limits a restart to exactly the failed hosts, even ones whose names look like patterns", async () => {
    const local = { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" };
    const { result, sink, recorded } = await run(
      {
        playbook: b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: ran\n"),
        hosts: ["!odd", "plain", "web*", "webx", "&and"].map((id) => ({ id, hostVars: local })),
      },
      // "!odd" alone would otherwise read as "every host but !odd".
      { attempt: 2, limit: ["!odd", "web*"] },
    );
    expect(result.status).toBe("SUCCESS");
    expect([...new Set(sink.events.filter((e) => e.event_type === "runner_on_ok").map((e) => e.host))].sort()).toEqual(["!odd", "web*"]);
    expect(recorded).toMatch(/--limit @\S+\/private\/limit\.txt/);
    const only = await run(
      {
        playbook: b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: ran\n"),
        hosts: ["!odd", "plain"].map((id) => ({ id, hostVars: local })),
      },
      { limit: ["!odd"] },
    );
    expect(only.sink.events.filter((e) => e.event_type === "runner_on_ok").map((e) => e.host)).toEqual(["!odd"]);
  });

  it("runs ansible-playbook with the job's forks, and with Ansible's default without them", async () => {
    const local = { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" };
    const job = {
      playbook: b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: 'forks={{ ansible_forks }}'\n"),
      hosts: [{ id: "local", hostVars: local }],
    };
    const set = await run({ ...job, forks: 37 });
    expect(set.result.status).toBe("SUCCESS");
    expect(set.sink.log()).toContain('"msg": "forks=37"');
    expect(set.recorded).toContain("--forks 37");
    const unset = await run(job);
    expect(unset.result.status).toBe("SUCCESS");
    expect(unset.sink.log()).toContain('"msg": "forks=5"');
    expect(unset.recorded).not.toContain("--forks");
  });

  it("ends INIT_FAILURE naming a key that is not a key, and a job without hosts", async () => {
    const bad = await run({ playbook: b64("- hosts: all\n  tasks: []\n"), hosts: [{ id: "a" }, { id: "b", sshPrivateKey: "not a key!" }] });
    expect(bad.final).toMatchObject({ status: "INIT_FAILURE", reason: "workspace_failed" });
    expect(bad.final.detail).toBe("hosts[1] (b) sshPrivateKey is neither a PEM key nor base64 of one");
    const none = await run({ playbook: b64("- hosts: all\n  tasks: []\n"), hosts: [] });
    expect(none.final.detail).toMatch(/the job has no hosts/);
  });

  it("ends INIT_FAILURE when the inline playbook is not base64 or not YAML", async () => {
    const notB64 = await run({ playbook: "this is not base64 !!", hosts: [{ id: "a" }] });
    expect(notB64.final).toMatchObject({ status: "INIT_FAILURE", reason: "playbook_invalid" });
    const notYaml = await run({ playbook: b64("- hosts: all\n  tasks: [\n"), hosts: [{ id: "a" }] });
    expect(notYaml.final).toMatchObject({ status: "INIT_FAILURE", reason: "playbook_invalid" });
    expect(notYaml.final.detail).toMatch(/^ERROR!/);
  });
});
