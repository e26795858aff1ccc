// Builds the dashboard (`/ui`) and the offline API reference (`/docs`) into public/, which the
// Worker serves through Workers Static Assets ([assets] in wrangler.toml). public/ is generated,
// never committed: `npm start`, `npm test` and `npm run deploy` build it first, and the test
// configs build it when it is missing.
//
//   node scripts/build-ui.mjs      # builds and prints the size of the dashboard's JavaScript, gzipped
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SRC = join(ROOT, "ui");
export const PUBLIC = join(ROOT, "public");
/** The budget for the dashboard's JavaScript, gzipped (issue 14). */
export const JS_BUDGET_BYTES = 150 * 1024;

const require = createRequire(join(ROOT, "package.json"));

/** Gzipped size in bytes of a built file under public/. */
export function gzippedSize(relPath) {
  return gzipSync(readFileSync(join(PUBLIC, relPath)), { level: 9 }).length;
}

/** Builds public/ui and public/docs; answers the dashboard's JavaScript size (raw and gzipped). */
export async function buildUi({ quiet = false } = {}) {
  const esbuild = await import("esbuild");
  // Files are overwritten in place, never the folder removed: a running `wrangler dev` keeps watching it.
  rmSync(join(PUBLIC, ".built"), { force: true });
  mkdirSync(join(PUBLIC, "ui"), { recursive: true });
  mkdirSync(join(PUBLIC, "docs"), { recursive: true });

  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [join(SRC, "src", "main.ts")],
    outfile: join(PUBLIC, "ui", "app.js"),
    bundle: true,
    format: "esm",
    target: ["es2022"],
    minify: true,
    legalComments: "none",
    logLevel: "warning",
    define: { "process.env.NODE_ENV": '"production"' },
  });
  for (const f of ["index.html", "app.css", "favicon.svg"]) copyFileSync(join(SRC, f), join(PUBLIC, "ui", f));

  // The API reference: swagger-ui's own bundle, served by the Worker (no CDN), started by a script file
  // (the Content-Security-Policy allows no inline script).
  const swagger = dirname(require.resolve("swagger-ui-dist/package.json"));
  for (const f of ["swagger-ui-bundle.js", "swagger-ui.css"]) copyFileSync(join(swagger, f), join(PUBLIC, "docs", f));
  for (const f of ["index.html", "init.js"]) copyFileSync(join(SRC, "docs", f), join(PUBLIC, "docs", f));
  copyFileSync(join(SRC, "favicon.svg"), join(PUBLIC, "docs", "favicon.svg"));

  const raw = statSync(join(PUBLIC, "ui", "app.js")).size;
  const gzipped = gzippedSize("ui/app.js");
  writeFileSync(join(PUBLIC, ".built"), `${new Date().toISOString()}\n`);
  if (!quiet) {
    console.log(
      `runner: built the dashboard: ${(raw / 1024).toFixed(1)} KB of JavaScript, ${(gzipped / 1024).toFixed(1)} KB gzipped (budget ${JS_BUDGET_BYTES / 1024} KB)`,
    );
  }
  if (gzipped > JS_BUDGET_BYTES) throw new Error(`the dashboard's JavaScript is ${gzipped} bytes gzipped, over the ${JS_BUDGET_BYTES}-byte budget`);
  return { raw, gzipped };
}

/** Builds public/ unless a build is there already (for test runs started without npm test). */
export async function ensureUiBuilt() {
  if (!existsSync(join(PUBLIC, ".built"))) await buildUi();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildUi().catch((e) => {
    console.error(`runner: ${e.message}`);
    process.exit(1);
  });
}
