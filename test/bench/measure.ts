import { performance } from "node:perf_hooks";

export const WARMUP = 5;
export const RUNS = 30;

/** Runs `work` WARMUP times, then RUNS times timed; prints and returns the median in ms. */
export async function median(label: string, work: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARMUP; i++) {
    await work();
  }
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const middle = times[Math.floor(RUNS / 2)]!;
  console.log(`  ${label.padEnd(48)} median ${middle.toFixed(2).padStart(8)} ms   p90 ${times[Math.floor(RUNS * 0.9)]!.toFixed(2).padStart(8)} ms`);
  return middle;
}

export function ratio(label: string, value: number, note = ""): void {
  console.log(`  ${label.padEnd(48)} ${value.toFixed(2).padStart(8)}x ${note}`);
}
