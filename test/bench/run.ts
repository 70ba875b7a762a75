/**
 * `npm run bench`: runs every benchmark in test/bench in a process of its own (Pulumi's mock
 * runtime is process-global) and prints their figures.
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { alternatives, exitWithUsageError, parseCommandLine } from "../../automation/cli/command-line.ts";

const here = import.meta.dirname;
/** Every module here but this runner and the measuring helpers, by name. */
const BENCHMARKS = readdirSync(here)
  .filter((file) => file.endsWith(".ts") && file !== "run.ts" && file !== "measure.ts")
  .map((file) => file.slice(0, -".ts".length));
const COMMAND_LINE = {
  name: "bench",
  usage: `usage: npm run bench -- [BENCHMARK...]   (default: all of them; a benchmark may be named by its start)
  BENCHMARK: ${BENCHMARKS.join(", ")}`,
  options: {},
};

const { positionals: only } = parseCommandLine(COMMAND_LINE);
const unknown = only.filter((name) => !BENCHMARKS.some((bench) => bench.startsWith(name)));
if (unknown.length > 0) {
  exitWithUsageError(
    COMMAND_LINE,
    unknown.map((name) => `${JSON.stringify(name)} is not a benchmark; use ${alternatives(BENCHMARKS)} (or the start of one)`),
  );
}
const benches = BENCHMARKS.filter((bench) => only.length === 0 || only.some((name) => bench.startsWith(name)));

let failed = false;
for (const bench of benches) {
  console.log(`\n== ${bench}.ts`);
  // --expose-gc lets benchmarks collect garbage before reading the heap.
  const result = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", join(here, `${bench}.ts`)], { stdio: "inherit" });
  failed ||= result.status !== 0;
}
process.exitCode = failed ? 1 : 0;
