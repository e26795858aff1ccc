import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Static checks that read the source tree (import graph, the generated protocol types): Node, no services.
export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    environment: "node",
    include: ["test/static/**/*.test.ts"],
  },
});
