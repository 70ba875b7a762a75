import { performance } from "node:perf_hooks";

export const WARMUP = 5;
export const RUNS = 30;

/** Runs `work` `warmup` times, then `runs` times timed; returns the median in ms. */
export async function medianMs(work: () => unknown, runs = RUNS, warmup = WARMUP): Promise<number> {
  return (await timings(work, runs, warmup))[Math.floor(runs / 2)]!;
}

/** Like medianMs, and prints the median and p90 under `label`. */
export async function median(label: string, work: () => unknown): Promise<number> {
  const times = await timings(work, RUNS, WARMUP);
  const middle = times[Math.floor(RUNS / 2)]!;
  console.log(`  ${label.padEnd(48)} median ${middle.toFixed(2).padStart(8)} ms   p90 ${times[Math.floor(RUNS * 0.9)]!.toFixed(2).padStart(8)} ms`);
  return middle;
}

async function timings(work: () => unknown, runs: number, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) {
    await work();
  }
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b);
}

export function ratio(label: string, value: number, note = ""): void {
  console.log(`  ${label.padEnd(48)} ${value.toFixed(2).padStart(8)}x ${note}`);
}
