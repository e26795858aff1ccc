import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";
// @ts-expect-error plain ESM helper shared with the scripts
import { ensureUiBuilt } from "./scripts/build-ui.mjs";
// @ts-expect-error plain ESM helper shared with the scripts
import { freshSecrets } from "./scripts/lib/keys.mjs";

// Worker tests: run inside workerd with real D1, Durable Objects, alarms and queues.
// The Worker serves the dashboard's built files ([assets] in wrangler.toml): built here if missing.
await ensureUiBuilt();

export default defineConfig(async () => ({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          ...(await freshSecrets()),
          ALLOW_LOOPBACK_HTTP: "true",
          TEST_MIGRATIONS: await readD1Migrations("migrations"),
        },
      },
    }),
  ],
  test: {
    include: ["test/worker/**/*.test.ts"],
    // Each file gets its own workerd (that is what isolates storage per file, so `isolate` stays on).
    // Vitest's default in run mode is one fewer than the cores: a single worker on 2 cores. Most of
    // a file's time is workerd start-up and waiting, so at least two at once (a third less time).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    setupFiles: ["./test/worker/setup.ts"],
    // Long polls, alarms and several workerd instances at once: a busy machine stretches them, and
    // no test here asserts a duration, so the limit is only a backstop against a hang.
    testTimeout: 30_000,
  },
}));
