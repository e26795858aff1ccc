// The callback plugin against ansible-core itself: one JSON line per callback, and the text of
// every event, concatenated, is exactly what the default callback prints for the same playbook,
// both from the plugin alone and through the agent's executor (the execution's log).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { childEnv } from "../src/ansible-env.ts";
import { CALLBACK_DIR, Run } from "../src/run.ts";
import { b64, makeLease, MemorySink, workRoot } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "rnr-plugin-"));
const work = workRoot();
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  work.remove();
});

// Deterministic output only (no command timings), but most kinds of callback.
const PLAYBOOK = `
- name: many kinds of events
  hosts: all
  gather_facts: false
  vars:
    ansible_python_interpreter: /usr/bin/python3
  tasks:
    - name: plain debug
      debug:
        msg: "hello {{ inventory_hostname }}"
    - name: a loop, changed on one item
      debug:
        msg: "item {{ item }}"
      loop: [a, b]
      changed_when: item == 'b'
      notify: a handler
    - name: skipped on h1
      debug:
        msg: only h2
      when: inventory_hostname == 'h2'
    - name: fails on h2, ignored
      fail:
        msg: ignored failure
      when: inventory_hostname == 'h2'
      ignore_errors: true
    - name: a loop item fails on h1
      assert:
        that: item != 'y' or inventory_hostname != 'h1'
      loop: [x, y]
      ignore_errors: true
    - name: retries until it gives up
      debug:
        msg: try
      register: r
      until: false
      retries: 1
      delay: 0
      ignore_errors: true
      when: inventory_hostname == 'h1'
    - name: async with polling
      command: sleep 1
      async: 10
      poll: 1
      changed_when: false
      when: inventory_hostname == 'h1'
    - name: async that fails
      command: /bin/false
      async: 10
      poll: 1
      ignore_errors: true
      when: inventory_hostname == 'h2'
    - name: a var
      debug:
        var: inventory_hostname
    - name: include
      include_tasks: ${join(dir, "included.yml")}
    - name: fail for real on h2
      fail:
        msg: real failure
      when: inventory_hostname == 'h2'
  handlers:
    - name: a handler
      debug:
        msg: handled
`;

function run(env: Record<string, string>): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync("ansible-playbook", ["-i", join(dir, "inventory.ini"), join(dir, "playbook.yml")], {
    cwd: dir,
    encoding: "utf8",
    env: { ...childEnv(), ANSIBLE_NOCOLOR: "1", ANSIBLE_FORKS: "1", ANSIBLE_RETRY_FILES_ENABLED: "0", ANSIBLE_LOCAL_TEMP: join(dir, "tmp"), ...env },
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

// One fork keeps host order fixed; async job ids and the number of polls differ from run to run.
const normalise = (s: string) =>
  s
    .replace(/^ASYNC POLL on .*\n/gm, "")
    .replace(/jid=[\w.]+/g, "jid=J")
    .replace(/"(ansible_job_id|results_file|start|end|delta)": "[^"]*"/g, '"$1": "X"');

describe("runner_events callback plugin", () => {
  writeFileSync(join(dir, "playbook.yml"), PLAYBOOK);
  writeFileSync(join(dir, "included.yml"), "- name: included task\n  debug:\n    msg: from include\n");
  writeFileSync(join(dir, "inventory.ini"), "h1 ansible_connection=local\nh2 ansible_connection=local\n");

  const reference = run({ ANSIBLE_STDOUT_CALLBACK: "default" });

  it("writes one JSON object per callback whose texts add up to the default callback's output", () => {
    const eventsFile = join(dir, "events.jsonl");
    const ours = run({ ANSIBLE_STDOUT_CALLBACK: "runner_events", ANSIBLE_CALLBACK_PLUGINS: CALLBACK_DIR, RUNNER_EVENTS_FILE: eventsFile });

    expect(reference.status).toBe(2);
    expect(ours.status).toBe(2);
    expect(ours.stdout).toBe(""); // everything went to the events file
    const events = readFileSync(eventsFile, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    const text = events.map((e) => e.stdout).join("");
    expect(normalise(text)).toBe(normalise(reference.stdout));

    const types = new Set(events.map((e) => e.event));
    for (const t of [
      "playbook_on_start",
      "playbook_on_play_start",
      "playbook_on_task_start",
      "runner_on_start",
      "runner_on_ok",
      "runner_on_failed",
      "runner_on_skipped",
      "runner_item_on_ok",
      "runner_item_on_failed",
      "runner_retry",
      "runner_on_async_ok",
      "runner_on_async_failed",
      "playbook_on_include",
      "playbook_on_notify",
      "playbook_on_handler_task_start",
      "playbook_on_stats",
    ]) {
      expect(types, t).toContain(t);
    }
    for (const e of events) {
      expect(Object.keys(e).sort()).toEqual(["data", "event", "host", "play", "stdout", "task", "ts"]);
      expect(typeof e.ts).toBe("number");
    }
    const failed = events.find((e) => e.event === "runner_on_failed" && e.task === "fail for real on h2");
    expect(failed.host).toBe("h2");
    expect(failed.play).toBe("many kinds of events");
    expect(failed.data.result.msg).toBe("real failure");
    expect(failed.data.ignore_errors).toBe(false);
    expect(failed.stdout).toBe('fatal: [h2]: FAILED! => {"changed": false, "msg": "real failure"}\n');
    const stats = events.at(-1);
    expect(stats.event).toBe("playbook_on_stats");
    expect(stats.data.hosts.h2).toMatchObject({ failed: 1, ignored: 2 });
    expect(stats.data.hosts.h1).toMatchObject({ failed: 0, ignored: 2 });
  });

  it("through the agent, the execution's log is the default callback's output, event by event", async () => {
    const local = { ansible_connection: "local" };
    const lease = makeLease({
      playbook: b64(PLAYBOOK),
      hosts: [
        { id: "h1", hostVars: local },
        { id: "h2", hostVars: local },
      ],
    });
    const sink = new MemorySink();
    const env = { ...process.env, ANSIBLE_FORKS: "1" };
    const result = await new Run(lease, sink, { workRoot: work.dir, env }).run();
    expect(result.status).toBe("FAILURE");
    expect(sink.events.filter((e) => e.event_type === "verbose")).toEqual([]); // nothing printed outside a callback
    expect(normalise(sink.log())).toBe(normalise(reference.stdout));
  });

  it("prints like the default callback when no events destination is set", () => {
    const plain = run({ ANSIBLE_STDOUT_CALLBACK: "runner_events", ANSIBLE_CALLBACK_PLUGINS: CALLBACK_DIR });
    expect(normalise(plain.stdout)).toBe(normalise(reference.stdout));
  });
});
