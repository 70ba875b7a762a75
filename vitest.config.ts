import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Pulumi keeps its mock monitor and config on globalThis, so every test file
    // gets its own process (../shared/reference/pulumi.md §3.2).
    pool: "forks",
    isolate: true,
    testTimeout: 30_000,
  },
});
