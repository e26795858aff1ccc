// `npm run deploy`: build the dashboard, apply the D1 migrations remotely, then deploy the Worker.
// Needs CLOUDFLARE_API_TOKEN (or `wrangler login`), a real database_id in wrangler.toml, and the
// secrets set once with `wrangler secret put JWT_PRIVATE_KEY` / `RUNNER_SECRETS_KEY`.
import { spawnSync } from "node:child_process";
import { buildDownloads } from "./lib/downloads.mjs";

// The packed agent and CLI go up with the Worker's static assets (public/downloads/).
buildDownloads({ force: true });
import { buildUi } from "./build-ui.mjs";

await buildUi(); // public/: the dashboard and the API reference, uploaded as the Worker's static assets

for (const args of [["d1", "migrations", "apply", "DB", "--remote"], ["deploy"]]) {
  const r = spawnSync("npx", ["wrangler", ...args], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
