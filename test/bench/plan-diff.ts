/**
 * The plan diff's wall time for the five example stacks, as the pull-request workflow runs it
 * (one command, against the working tree's own HEAD), against a baseline measured in the same run:
 * the plain offline preview of each of the five stacks, a process each, which is what a reviewer
 * had before. The goal: well under a minute on two cores, so a plan diff never holds a review up.
 *
 *   npm run bench -- plan-diff        (PLAN_DIFF_RUNS, default 3: each run is seconds)
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { ratio } from "./measure.ts";

const REPOSITORY = join(import.meta.dirname, "..", "..");
const STACKS = ["testbed", "local", "conf-demo", "pop-vienna", "pop-local"];
const RUNS = Number(process.env.PLAN_DIFF_RUNS ?? 3);

function timed(args: string[]): number {
  const start = performance.now();
  const result = spawnSync(process.execPath, ["--import", "tsx", "automation/cli/offline-preview.ts", ...args], { cwd: REPOSITORY, encoding: "utf8" });
  const elapsed = performance.now() - start;
  if (result.status !== 0) {
    throw new Error(`preview ${args.join(" ")} exited ${String(result.status)}: ${result.stderr}`);
  }
  return elapsed;
}

function median(values: number[]): number {
  return values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

const previews: number[] = [];
const diffs: number[] = [];
for (let run = 0; run < RUNS; run++) {
  previews.push(STACKS.reduce((sum, stack) => sum + timed([stack]), 0));
  diffs.push(timed([...STACKS, "--against", "HEAD", "--markdown"]));
}
const line = (label: string, ms: number) => console.log(`  ${label.padEnd(48)} median ${(ms / 1000).toFixed(2).padStart(8)} s   (${RUNS} runs)`);
line("five plain previews, a process each (baseline)", median(previews));
line("plan diff of the five, both sides, one process", median(diffs));
ratio("plan diff / baseline", median(diffs) / median(previews), "(the diff evaluates every stack twice, and conf-demo's testbed twice more)");
