// Which isolation an agent runs with: the policy table, the refusal of a shared-pool agent without
// the sandbox (its own exit code), `doctor`, and the config file that holds the credential.
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EXIT } from "../src/agent.ts";
import { main } from "../src/cli.ts";
import { chooseIsolation, type IsolationSupport } from "../src/sandbox.ts";

const dir = mkdtempSync(join(tmpdir(), "rnr-iso-"));
chmodSync(dir, 0o711);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io(env: NodeJS.ProcessEnv) {
  const chunks: string[] = [];
  const push = (t: string) => void chunks.push(t);
  return { io: { out: push, err: push, env }, text: () => chunks.join("") };
}

const all: IsolationSupport = { sandbox: { ok: true }, uid: { ok: true }, root: true };
const noBwrap: IsolationSupport = { sandbox: { ok: false, why: "bubblewrap (bwrap) is not installed" }, uid: { ok: true }, root: true };
const notRoot: IsolationSupport = { sandbox: { ok: true }, uid: { ok: false, why: "not root" }, root: false };
const nothing: IsolationSupport = { sandbox: { ok: false, why: "no bwrap" }, uid: { ok: false, why: "not root" }, root: false };

describe("the isolation policy", () => {
  it.each([
    // requested, support, shared → level (or refusal), a user per slot, a warning
    [undefined, all, false, "sandbox", true, false],
    [undefined, notRoot, false, "sandbox", false, false],
    [undefined, noBwrap, false, "uid", true, true],
    [undefined, nothing, false, null, false, false],
    ["sandbox", noBwrap, false, null, false, false],
    ["uid", notRoot, false, null, false, false],
    ["uid", all, false, "uid", true, false],
    ["none", nothing, false, "none", false, true],
    [undefined, all, true, "sandbox", true, false],
    ["sandbox", all, true, "sandbox", true, false],
    ["uid", all, true, null, false, false],
    ["none", all, true, null, false, false],
    [undefined, noBwrap, true, null, false, false],
    [undefined, notRoot, true, null, false, false],
  ] as const)("asked %s, host %o, shared %s → %s", (requested, support, shared, level, perSlotUid, warns) => {
    const c = chooseIsolation(requested, support, shared);
    if (level === null) {
      expect(c.ok).toBe(false);
      return;
    }
    expect(c).toMatchObject({ ok: true, level, perSlotUid });
    expect(c.ok && !!c.warning).toBe(warns);
  });
});

describe("runner-agent run and doctor", () => {
  const shared = join(dir, "shared.json");
  writeFileSync(shared, JSON.stringify({ url: "http://127.0.0.1:9", agentId: "a1", credential: "rac_a1_x", shared: true }), { mode: 0o600 });

  it("a shared-pool agent refuses to run without the sandbox, with exit code 6 and the reason", async () => {
    for (const level of ["none", "uid"]) {
      const c = io({ RUNNER_CONFIG: shared, RUNNER_WORK_DIR: join(dir, "work") });
      expect(await main(["run", "--isolation", level], c.io)).toBe(EXIT.ISOLATION);
      expect(c.text()).toContain(`a shared-pool agent runs other accounts' playbooks: it only runs with --isolation sandbox (got ${level})`);
    }
  });

  it("doctor says what this host supports and what run would use", async () => {
    const c = io({ RUNNER_CONFIG: shared, RUNNER_WORK_DIR: join(dir, "work") });
    expect(await main(["doctor"], c.io)).toBe(EXIT.OK);
    // This machine (root, bubblewrap installed) supports everything.
    expect(c.text()).toMatch(/sandbox +available/);
    expect(c.text()).toMatch(/uid +available/);
    expect(c.text()).toMatch(/this shared-pool agent would run with isolation sandbox with slot users \d+-\d+/);
    const refused = io({ RUNNER_CONFIG: shared });
    expect(await main(["doctor", "--isolation", "none"], refused.io)).toBe(EXIT.ISOLATION);
    expect(refused.text()).toContain("would not run: a shared-pool agent");
  });

  it("makes a config file that others could read private before using it", async () => {
    const loose = join(dir, "loose.json");
    writeFileSync(loose, JSON.stringify({ url: "http://127.0.0.1:9", credential: "rac_a1_x", shared: true }));
    chmodSync(loose, 0o644);
    const c = io({ RUNNER_CONFIG: loose });
    await main(["run", "--isolation", "none"], c.io);
    expect(statSync(loose).mode & 0o777).toBe(0o600);
    expect(c.text()).toContain("was readable by others (mode 644): made it 0600");
  });
});
