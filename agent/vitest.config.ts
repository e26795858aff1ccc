import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Agent tests run in Node against real ansible-playbook, sshd and git (see test/fixtures/).
export default defineConfig({
  root: fileURLToPath(new URL("..", import.meta.url)),
  test: {
    environment: "node",
    include: ["agent/test/**/*.test.ts"],
    // Separate processes: tests send signals and spawn process groups.
    pool: "forks",
    // Most of the time is spent waiting on ansible, ssh and git: one more worker than the two
    // cores pays (vitest starts the slowest files, the API-backed one, first).
    maxWorkers: 3,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
