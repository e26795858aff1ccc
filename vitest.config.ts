import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
// @ts-expect-error plain ESM helper shared with the scripts
import { freshSecrets } from "./scripts/lib/keys.mjs";

// Worker tests: run inside workerd with real D1, Durable Objects, alarms and queues.
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
    setupFiles: ["./test/worker/setup.ts"],
  },
}));
