// The two ways the agent runs: from the workspace (TypeScript source, Node strips the types) and
// installed from the packed tarball (compiled dist/, as `npx runner-agent` or a dependency).
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const AGENT = join(import.meta.dirname, "..");
const ROOT = join(AGENT, "..");
const tmp = mkdtempSync(join(tmpdir(), "rnr-pkg-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } });
    let out = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (out += d));
    c.on("close", (code) => resolve({ code, out }));
  });
}

describe("packaging", () => {
  it("runs from the workspace source", async () => {
    const r = await run(process.execPath, [join(AGENT, "bin", "runner-agent.mjs"), "--version"], ROOT);
    expect(r.code, r.out).toBe(0);
    expect(r.out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("packs (building dist/) and runs installed from the tarball, callback plugin included", async () => {
    // Pack a copy, so that building dist/ never races the workspace's own bin in other tests.
    const pkg = join(tmp, "pkg");
    for (const p of ["package.json", "tsconfig.json", "tsconfig.build.json", "bin", "src", "scripts", "ansible"])
      cpSync(join(AGENT, p), join(pkg, p), { recursive: true });
    symlinkSync(join(ROOT, "node_modules"), join(pkg, "node_modules"));
    const packed = await run("npm", ["pack", "--pack-destination", tmp, "--loglevel=error"], pkg);
    expect(packed.code, packed.out).toBe(0);
    const tarball = readdirSync(tmp).find((f) => f.endsWith(".tgz"))!;
    const list = await run("tar", ["tzf", join(tmp, tarball)], tmp);
    expect(list.out).toContain("package/dist/cli.js");
    expect(list.out).toContain("package/ansible/callback_plugins/runner_events.py");
    expect(list.out).not.toContain("package/src/");

    const app = join(tmp, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
    // The agent's dependencies are packed from the workspace's node_modules and installed beside
    // it, with a cache of its own: nothing depends on the registry, the network or on what the
    // machine's npm cache holds (a stale one makes --prefer-offline miss a newer version).
    // Their own dependencies too (prom-client brings some), all hoisted into the root node_modules.
    const depsOf = (dir: string) => Object.keys(JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).dependencies ?? {});
    const deps: string[] = [];
    for (const queue = depsOf(AGENT); queue.length; ) {
      const d = queue.shift()!;
      if (deps.includes(d)) continue;
      deps.push(d);
      queue.push(...depsOf(join(ROOT, "node_modules", d)));
    }
    const depDir = join(tmp, "deps");
    mkdirSync(depDir);
    for (const d of deps) {
      // --ignore-scripts: a dependency's own `prepare` (prom-client's runs husky) is for its developers.
      const p = await run("npm", ["pack", join(ROOT, "node_modules", d), "--pack-destination", depDir, "--ignore-scripts", "--loglevel=error"], tmp);
      expect(p.code, p.out).toBe(0);
    }
    const depTarballs = readdirSync(depDir).map((f) => join(depDir, f));
    expect(depTarballs).toHaveLength(deps.length);
    const inst = await run(
      "npm",
      ["install", "--cache", join(tmp, "npm-cache"), "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", ...depTarballs, join(tmp, tarball)],
      app,
    );
    expect(inst.code, inst.out).toBe(0);

    const help = await run(join(app, "node_modules", ".bin", "runner-agent"), ["--help"], app);
    expect(help.code, help.out).toBe(0);
    expect(help.out).toContain("register [options]");

    // The installed executor finds its callback plugin and runs a playbook.
    writeFileSync(
      join(app, "try.mjs"),
      `import { Run } from "runner-agent/dist/run.js";
const playbook = Buffer.from("- hosts: all\\n  gather_facts: false\\n  tasks:\\n    - debug: msg=from-the-tarball\\n").toString("base64");
const out = [];
const r = await new Run({ executionId: "pkg-1", attempt: 1, job: { playbook, hosts: [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }] } },
  { event: (e) => out.push(e.stdout), report: async () => {}, flush: async () => {} }, { workRoot: ${JSON.stringify(join(tmp, "work"))} }).run();
console.log(r.status, out.join("").includes("from-the-tarball"));
`,
    );
    const exec = await run(process.execPath, ["try.mjs"], app);
    expect(exec.out.trim()).toBe("SUCCESS true");
  });
});
