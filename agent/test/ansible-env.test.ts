// The environment of a run's processes and ansible-playbook's ssh arguments (agent/src/ansible-env.ts).
import { describe, expect, it } from "vitest";
import { ansibleEnv, childEnv, runEnv, sshArgs } from "../src/ansible-env.ts";
import { TRACKING_ENV } from "../src/process-group.ts";

describe("child environment", () => {
  it("drops the agent's own settings and tracking, and makes sure of a UTF-8 locale", () => {
    const env = childEnv({ PATH: "/bin", RUNNER_CREDENTIAL: "rac_x", RUNNER_URL: "u", [TRACKING_ENV]: "t", LANG: "C" });
    expect(env).toEqual({ PATH: "/bin", LANG: "C", LC_ALL: "C.UTF-8" });
    expect(childEnv({ LANG: "en_US.UTF-8" })).toEqual({ LANG: "en_US.UTF-8" });
  });

  it("an isolated run keeps only what it needs, with a HOME of its own", () => {
    const base = { PATH: "/usr/bin", HOME: "/root", SSH_AUTH_SOCK: "/tmp/agent", ANSIBLE_FORKS: "5", LANG: "C.UTF-8", RUNNER_CREDENTIAL: "rac_x" };
    expect(runEnv("sandbox", base, "/w/home")).toEqual({
      PATH: "/usr/bin",
      ANSIBLE_FORKS: "5",
      LANG: "C.UTF-8",
      HOME: "/w/home",
      USER: "runner",
      LOGNAME: "runner",
    });
    expect(runEnv("none", base, "/w/home")).toMatchObject({ HOME: "/root", SSH_AUTH_SOCK: "/tmp/agent" });
    expect(runEnv("none", base, "/w/home")).not.toHaveProperty("RUNNER_CREDENTIAL");
  });
});

describe("ssh arguments", () => {
  it("multiplex by default and skip host key checks when off", () => {
    expect(sshArgs({}, "off")).toBe(
      "-C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR",
    );
  });
  it("keep the user's own and name the known hosts file when strict", () => {
    expect(sshArgs({ ANSIBLE_SSH_ARGS: "-o Foo=1" }, "strict", "/etc/kh")).toBe("-o Foo=1 -o UserKnownHostsFile=/etc/kh");
    expect(sshArgs({}, "strict")).toBe("-C -o ControlMaster=auto -o ControlPersist=60s");
  });
});

describe("ansible-playbook's environment", () => {
  const ws = { cp: "/w/cp", tmp: "/w/tmp" };
  it("sets our callback on fd 3 and its lifeline on fd 4, no colours, sockets and temp files in the workspace, the tracking id", () => {
    const env = ansibleEnv({
      base: { PATH: "/bin", ANSIBLE_STDOUT_CALLBACK_OVERRIDE: "x" },
      trackingId: "t1",
      callbackDir: "/cb",
      hostKeyChecking: "strict",
      knownHosts: "/kh",
      ws,
    });
    expect(env).toMatchObject({
      PATH: "/bin",
      [TRACKING_ENV]: "t1",
      ANSIBLE_STDOUT_CALLBACK: "runner_events",
      ANSIBLE_CALLBACK_PLUGINS: "/cb",
      RUNNER_EVENTS_FD: "3",
      RUNNER_LIFELINE_FD: "4",
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_HOST_KEY_CHECKING: "True",
      ANSIBLE_SSH_ARGS: "-C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/kh",
      ANSIBLE_SSH_CONTROL_PATH_DIR: "/w/cp",
      ANSIBLE_LOCAL_TEMP: "/w/tmp",
      TMPDIR: "/w/tmp",
    });
    expect(env).not.toHaveProperty("ANSIBLE_STDOUT_CALLBACK_OVERRIDE");
    expect(env).not.toHaveProperty("RUNNER_LIFELINE_UID"); // kill(-1) only as a slot's own uid
    expect(ansibleEnv({ base: {}, trackingId: "t", callbackDir: "/cb", hostKeyChecking: "off", ws, lifelineUid: 1200000 }).RUNNER_LIFELINE_UID).toBe("1200000");
    expect(ansibleEnv({ base: {}, trackingId: "t", callbackDir: "/cb", hostKeyChecking: "off", ws, lifelineUid: 0 })).not.toHaveProperty("RUNNER_LIFELINE_UID");
  });
  it("puts our callback directory before the user's", () => {
    const env = ansibleEnv({ base: { ANSIBLE_CALLBACK_PLUGINS: "/mine" }, trackingId: "t", callbackDir: "/cb", hostKeyChecking: "off", ws });
    expect(env.ANSIBLE_CALLBACK_PLUGINS).toBe("/cb:/mine");
    expect(env.ANSIBLE_HOST_KEY_CHECKING).toBe("False");
  });
});
