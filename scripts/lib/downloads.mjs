// The packed agent and CLI that the Worker serves at /downloads/ (public/downloads/, gitignored):
// `npm pack` of agent/ and cli/, each under its plain name (runner-agent.tgz) and its versioned
// one (runner-agent-0.1.0.tgz). Packed from a copy, so that building dist/ never races a bin
// that is running from the workspace; skipped when the tarball is newer than every packed file.
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const DOWNLOADS_DIR = join(ROOT, "public", "downloads");

/** [workspace folder, what is copied to pack it] */
export const PACKAGES = [
  ["agent", ["package.json", "tsconfig.json", "tsconfig.build.json", "README.md", "bin", "src", "scripts", "ansible"]],
  ["cli", ["package.json", "tsconfig.json", "tsconfig.build.json", "README.md", "bin", "src", "scripts"]],
];

function newestMtime(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, e)));
  return newest;
}

/** Packs what is stale; answers the paths of the plain-named tarballs. */
export function buildDownloads({ force = false, log = (m) => console.log(`runner: ${m}`) } = {}) {
  mkdirSync(DOWNLOADS_DIR, { recursive: true });
  const out = [];
  for (const [dir, parts] of PACKAGES) {
    const pkgDir = join(ROOT, dir);
    const { name, version } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
    const plain = join(DOWNLOADS_DIR, `${name}.tgz`);
    const versioned = join(DOWNLOADS_DIR, `${name}-${version}.tgz`);
    out.push(plain);
    const sources = Math.max(...parts.map((p) => newestMtime(join(pkgDir, p))));
    if (!force && existsSync(plain) && existsSync(versioned) && statSync(plain).mtimeMs >= sources) continue;
    log(`packing ${name} ${version} into public/downloads/`);
    const tmp = mkdtempSync(join(tmpdir(), `rnr-pack-${dir}-`));
    try {
      const copy = join(tmp, "pkg");
      for (const p of parts) if (existsSync(join(pkgDir, p))) cpSync(join(pkgDir, p), join(copy, p), { recursive: true });
      symlinkSync(join(ROOT, "node_modules"), join(copy, "node_modules"));
      const r = spawnSync("npm", ["pack", "--pack-destination", tmp, "--loglevel=error"], {
        cwd: copy,
        encoding: "utf8",
        env: { ...process.env, npm_config_update_notifier: "false" },
      });
      if (r.status !== 0) throw new Error(`npm pack of ${dir}/ failed:\n${r.stdout}\n${r.stderr}`);
      const tgz = readdirSync(tmp).find((f) => f.endsWith(".tgz"));
      if (!tgz) throw new Error(`npm pack of ${dir}/ made no tarball`);
      copyFileSync(join(tmp, tgz), versioned);
      copyFileSync(join(tmp, tgz), plain);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return out;
}

// `node scripts/lib/downloads.mjs [--force]`
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildDownloads({ force: process.argv.includes("--force") });
}
