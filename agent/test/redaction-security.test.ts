// Secrets (keys, passwords and their base64 forms) never leave the agent: unit checks of the
// redactor, then a real run whose playbook prints secrets every way it can, through the real
// session (uploader, reporter), checking every byte that would be uploaded.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MASK, Redactor, secretForms, StreamRedactor } from "../src/redact.ts";
import { Session } from "../src/session.ts";
import { startSshd, type SshServer } from "../../test/fixtures/sshd.ts";
import { b64, makeLease, RecordingTransport, workRoot } from "./helpers.ts";

const PEM = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBrKzY4c2VjcmV0a2V5bWF0ZXJpYWxfX19fX19fX19fAAAAmC2rbYotq22K
AAAAC3NzaC1lZDI1NTE5AAAAIGsrNjhzZWNyZXRrZXltYXRlcmlhbF9fX19fX19fX18AAA
-----END OPENSSH PRIVATE KEY-----
`;

describe("Redactor", () => {
  it("masks a key given as base64 in its PEM, line, base64 and JSON-escaped forms", () => {
    const r = new Redactor([b64(PEM)]);
    const line2 = PEM.split("\n")[2]!;
    expect(r.text(`key: ${PEM}`)).not.toContain(line2);
    expect(r.text(`one line: ${line2} end`)).toBe(`one line: ${MASK} end`);
    expect(r.text(`b64: ${b64(PEM)}`)).toBe(`b64: ${MASK}`);
    const json = JSON.stringify({ msg: PEM });
    expect(r.text(json)).not.toContain(line2);
    expect(JSON.parse(JSON.stringify(r.value({ msg: PEM }))).msg).not.toContain(line2);
    // The whole key goes as one; the armor lines alone are not secret.
    expect(r.text(PEM)).toBe(MASK);
    expect(r.text("-----BEGIN OPENSSH PRIVATE KEY-----")).toBe("-----BEGIN OPENSSH PRIVATE KEY-----");
  });

  it("masks a password and its base64 in strings and nested values, never in keys", () => {
    const r = new Redactor(["hunter2-pw"]);
    // Keys are structure (host names in host stats, result fields): renaming one breaks what reads it.
    expect(r.value({ a: ["x hunter2-pw y", { "hunter2-pw": b64("hunter2-pw") }], n: 3 })).toEqual({ a: [`x ${MASK} y`, { "hunter2-pw": MASK }], n: 3 });
    expect(secretForms("hunter2-pw")).toContain(b64("hunter2-pw"));
  });

  it("masks a secret shorter than 4 characters only as a whole word", () => {
    const r = new Redactor(["ok"]);
    expect(r.text("ok: [web1]")).toBe(`${MASK}: [web1]`);
    expect(r.text("the token is ok")).toBe(`the token is ${MASK}`);
    expect(r.text("token okay broken")).toBe("token okay broken");
    // Through a stream cut at every place, the same answer.
    const text = "ok token ok. okay ok";
    for (let cut = 0; cut <= text.length; cut++) {
      const s = new StreamRedactor(r);
      expect(s.push(text.slice(0, cut)) + s.push(text.slice(cut)) + s.end(), `cut at ${cut}`).toBe(`${MASK} token ${MASK}. okay ${MASK}`);
    }
  });

  it("redacts an event's text and a status report's detail, never their protocol fields", () => {
    const r = new Redactor(["ok"]);
    const e = r.event({ timestamp: 1, event_type: "runner_on_ok", play: "p ok", task: "ok", host: "ok", stdout: "ok: [ok]\n", data: { ok: true, msg: "ok" } });
    expect(e).toEqual({
      timestamp: 1,
      event_type: "runner_on_ok",
      play: `p ${MASK}`,
      task: MASK,
      host: "ok",
      stdout: `${MASK}: [${MASK}]\n`,
      data: { ok: true, msg: MASK },
    });
    const stats = { ok: { ok: 1, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 } };
    expect(r.report({ status: "SUCCESS", reason: "ok", hostStats: stats, failedHosts: ["ok"], detail: "it went ok" })).toEqual({
      status: "SUCCESS",
      reason: "ok",
      hostStats: stats,
      failedHosts: ["ok"],
      detail: `it went ${MASK}`,
    });
  });

  it("masks a secret with quotes, backslashes, tabs or non-ASCII letters as printed inside JSON", () => {
    const pw = 'Q"uo\\te\twörd-5';
    const r = new Redactor([pw]);
    const once = JSON.stringify(pw).slice(1, -1); // as the default callback prints a result
    const ascii = once.replace("ö", "\\u00f6"); // as Python's json.dumps writes it by default
    const twice = JSON.stringify(once).slice(1, -1); // a JSON document inside a JSON string
    for (const form of [pw, once, ascii, twice]) expect(r.text(`a ${form} b`), form).toBe(`a ${MASK} b`);
  });

  it("masks overlapping secrets whole", () => {
    const r = new Redactor(["abcdef", "defghi"]);
    expect(r.text("xxabcdefghixx")).toBe(`xx${MASK}xx`);
  });

  it("leaves text without secrets alone, and an empty list changes nothing", () => {
    expect(new Redactor(["zzz-secret"]).text("nothing to see")).toBe("nothing to see");
    expect(new Redactor([]).text("hunter2")).toBe("hunter2");
  });

  it("catches secrets split across stream chunks at every possible boundary", () => {
    const secrets = ["correct-horse-battery", b64(PEM)];
    const r = new Redactor(secrets);
    const text = `start correct-horse-battery mid ${PEM} and ${b64("correct-horse-battery")} end correct-horse-battery`;
    for (let seed = 1; seed <= 200; seed++) {
      const s = new StreamRedactor(r);
      let out = "";
      let i = 0;
      let x = seed;
      while (i < text.length) {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        const n = 1 + (x % 23);
        out += s.push(text.slice(i, i + n));
        i += n;
      }
      out += s.end();
      expect(out).toBe(r.text(text));
      expect(out).not.toContain("correct-horse-battery");
      expect(out).not.toContain(PEM.split("\n")[1]);
    }
  });
});

describe("the agent's own settings", () => {
  const work = workRoot();
  afterAll(() => work.remove());
  it("are not in a playbook's environment (lookup('env') finds no RUNNER_* variable)", async () => {
    const lease = makeLease({
      playbook: b64(
        `- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.shell: env | grep -o '^RUNNER_[A-Z_]*' | sort | xargs\n      register: n\n    - ansible.builtin.debug:\n        msg: "cred=[{{ lookup('env', 'RUNNER_CREDENTIAL') }}] vars=[{{ n.stdout }}]"\n`,
      ),
      hosts: [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }],
    });
    const transport = new RecordingTransport();
    const env = { ...process.env, RUNNER_CREDENTIAL: "rac_agent_s3cret", RUNNER_TOKEN: "rrt_s3cret" };
    const result = await new Session(lease, { transport, executor: { workRoot: work.dir, env } }).run();
    expect(result.status).toBe("SUCCESS");
    // Only the agent's plumbing for the run itself: the callback plugin's pipe and the process tracking id.
    expect(transport.allBytes()).toContain("cred=[] vars=[RUNNER_AGENT_TRACKING_ID RUNNER_EVENTS_FD]");
    expect(transport.allBytes()).not.toContain("s3cret");
  });
});

describe("a two-character secret", () => {
  const work = workRoot();
  afterAll(() => work.remove());

  it("does not break a run: the status report keeps its fields and host stats, the output is masked", async () => {
    const lease = makeLease(
      {
        playbook: b64(`- hosts: all\n  gather_facts: false\n  tasks:\n    - name: say it\n      ansible.builtin.debug:\n        msg: "all is {{ word }}"\n`),
        hosts: [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }],
        properties: { word: "ok" },
      },
      // As a git password "ok" would arrive.
      { secrets: ["ok"] },
    );
    const transport = new RecordingTransport();
    const result = await new Session(lease, { transport, executor: { workRoot: work.dir } }).run();
    expect(result.status).toBe("SUCCESS");
    const final = transport.statusReports.at(-1)!;
    expect(final).toMatchObject({ status: "SUCCESS", failedHosts: [] });
    expect(final.hostStats).toEqual({ localhost: { ok: 1, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 } });
    const events = transport.storedEvents();
    expect(events.map((e) => e.event_type)).toContain("runner_on_ok");
    expect(events.find((e) => e.event_type === "runner_on_ok")!.stdout).toContain(`"msg": "all is ${MASK}"`);
    // "ok: [localhost]" is Ansible's status word, and the same word: masked as text, nothing else.
    expect(events.find((e) => e.event_type === "playbook_on_stats")!.data).toMatchObject({ hosts: { localhost: { ok: 1 } } });
  });
});

describe("a playbook that prints secrets", () => {
  let sshd: SshServer;
  const work = workRoot();
  const tmp = mkdtempSync(join(tmpdir(), "rnr-secret-"));
  const PASSWORD = "Db-Pa55word-7f3a9c";
  // Printed inside JSON, this one shows escaped: \" \\ \t
  const API_KEY = 'ak"Z\\9\tkey-wörd';
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
    work.remove();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("uploads none of the secrets' bytes, in events or status reports", async () => {
    const key = sshd.clientKey;
    // ansible-playbook's own raw output carries the password too, in pieces split by pauses.
    const wrapper = join(tmp, "ansible-playbook");
    writeFileSync(
      wrapper,
      `#!/bin/sh\nprintf 'raw: ${PASSWORD.slice(0, 5)}' >&2\nsleep 0.2\nprintf '${PASSWORD.slice(5)} done\\n' >&2\nexec ansible-playbook "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    const lease = makeLease(
      {
        playbook: b64(`- hosts: all
  gather_facts: false
  tasks:
    - name: print the key file
      ansible.builtin.command: cat {{ ansible_ssh_private_key_file }}
      changed_when: false
    - name: print the key through a lookup, and the password
      ansible.builtin.debug:
        msg: "{{ lookup('file', ansible_ssh_private_key_file) }} pw={{ db_password }} b64={{ db_password | b64encode }}"
    - name: print a secret that JSON escapes
      ansible.builtin.debug:
        var: api_key
    - name: and inside a message
      ansible.builtin.debug:
        msg: "key={{ api_key }}"
    - name: fail showing the password
      ansible.builtin.fail:
        msg: "cannot connect with {{ db_password }}"
`),
        sshPrivateKey: key.base64,
        hosts: [{ id: "h1", hostVars: sshd.hostVars() }],
        properties: { db_password: PASSWORD, api_key: API_KEY },
      },
      { secrets: [key.base64, PASSWORD, API_KEY] },
    );
    const transport = new RecordingTransport();
    const result = await new Session(lease, { transport, executor: { workRoot: work.dir, ansiblePlaybook: wrapper } }).run();
    expect(result.status).toBe("FAILURE");

    const bytes = transport.allBytes();
    const events = transport.storedEvents();
    // The secrets were printed (so the test means something)…
    expect(events.find((e) => e.task === "print the key file")!.stdout + JSON.stringify(events.find((e) => e.task === "print the key file")!.data)).toContain(
      MASK,
    );
    expect(bytes).toContain(`pw=${MASK} b64=${MASK}`);
    expect(bytes).toContain(`raw: ${MASK} done`);
    expect(events.find((e) => e.event_type === "runner_on_ok" && e.task === "print a secret that JSON escapes")!.stdout).toContain(`"api_key": "${MASK}"`);
    expect(events.find((e) => e.event_type === "runner_on_ok" && e.task === "and inside a message")!.stdout).toContain(`"msg": "key=${MASK}"`);
    // …and none of their forms went out.
    const escaped = JSON.stringify(API_KEY).slice(1, -1);
    const forbidden = [
      PASSWORD,
      b64(PASSWORD),
      key.base64,
      key.pem.trim(),
      ...key.pem.split("\n").filter((l) => l.length >= 8 && !l.startsWith("-----")),
      escaped, // as it appears in the text of a JSON document
      JSON.stringify(escaped).slice(1, -1), // and once more inside the uploaded JSON
      b64(API_KEY),
    ];
    for (const f of forbidden) expect(bytes.includes(f), `uploaded bytes contain ${f.slice(0, 20)}…`).toBe(false);
    expect(bytes).not.toContain(JSON.stringify(key.pem).slice(1, 40));
    expect(transport.statusReports.at(-1)).toMatchObject({ status: "FAILURE", failedHosts: ["h1"] });
  });
});
