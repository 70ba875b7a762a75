/**
 * `npm run bench`: runs every benchmark in test/bench in a process of its own (Pulumi's mock
 * runtime is process-global) and prints their figures.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const here = import.meta.dirname;
const only = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((file) => file.endsWith(".ts") && file !== "run.ts" && file !== "measure.ts")
  .filter((file) => only.length === 0 || only.some((name) => file.startsWith(name)));

let failed = false;
for (const bench of benches) {
  console.log(`\n== ${bench}`);
  // --expose-gc lets benchmarks collect garbage before reading the heap.
  const result = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", join(here, bench)], { stdio: "inherit" });
  failed ||= result.status !== 0;
}
process.exitCode = failed ? 1 : 0;
