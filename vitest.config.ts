import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Pulumi keeps its mock monitor and config on globalThis, so every test file
    // gets its own process (../shared/reference/pulumi.md §3.2).
    pool: "forks",
    isolate: true,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/{unit,component,nginx,service,workflows}/**/*.test.ts"], testTimeout: 30_000 },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          // Finds or makes the Pulumi CLI and the cluster; fails every e2e test, naming what is missing.
          globalSetup: ["test/e2e/global-setup.ts"],
          // One cluster: the testbed's cluster-wide objects exist once, so the files take turns.
          fileParallelism: false,
          // Each awaits the real engine; a stall is cut short by the operation's own bound.
          testTimeout: 10 * 60_000,
          hookTimeout: 10 * 60_000,
        },
      },
    ],
  },
});
