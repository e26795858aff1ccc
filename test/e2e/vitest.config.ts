import { defineConfig } from "vitest/config";

// End-to-end: the real stack (wrangler dev + runner-agent + sshd + git), driven over HTTP only.
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.test.ts"],
    environment: "node",
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    root: ".",
  },
});
