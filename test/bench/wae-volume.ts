/**
 * The exact layout with the demand's volume (issue 19) at 3, 30, 300 and 3,000 hosts: computeLayout
 * end to end from an empty PoP — validation, capacity, the MILP under its time limit, what the
 * layout carries — median and worst time over seeded instances, the optimality gap (median and
 * worst), how often the time limit stopped the solver, and how often no layout could carry the
 * demand. Baseline in the same run: the same inputs laid out by the mix alone (the paper's model,
 * exact), which has no capacity rows.
 *
 *   npm run bench -- wae-volume        (WAE_VOLUME_SIZES=3,30 for a quick look)
 */
import { performance } from "node:perf_hooks";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { highsSolver } from "../../automation/solver/highs.ts";
import { type Host, type LayoutInput, type LayoutResult, ROLES, computeLayout } from "../../domain/wae/index.ts";

const SIZES = (process.env.WAE_VOLUME_SIZES ?? "3,30,300,3000").split(",").map(Number);
/** Instances per size: fewer where each can take the whole time limit. */
const INSTANCES: Record<number, number> = { 3: 30, 30: 30, 300: 10, 3000: 4 };
const PERIOD_SECONDS = 600;
const generator = xoroshiro128plus(1919);
const uniform = () => uniformFloat64(generator);

/** Hosts of 4 to 16 cores and 1 or 10 Gbit/s, each with its own background load. */
function randomHosts(count: number): Host[] {
  return Array.from({ length: count }, (_, index) => {
    const cores = 4 + Math.floor(12 * uniform());
    const linkMbps = uniform() < 0.5 ? 1000 : 10_000;
    return { name: `host${index}`, cpu: { capacityCores: cores, usedCores: cores * 0.6 * uniform() }, network: { linkMbps, txMbps: linkMbps * 0.6 * uniform() } };
  });
}

/** A period's requests: about 150/s per host in a random mix, so that a PoP needs a share of its hosts. */
function randomRequests(hosts: number): LayoutInput["requests"] {
  const weights = ROLES.map(() => 0.1 + uniform());
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  const volume = 150 * hosts * PERIOD_SECONDS * (0.5 + uniform());
  return Object.fromEntries(ROLES.map((role, i) => [role, Math.round((volume * weights[i]!) / total)])) as LayoutInput["requests"];
}

const quantile = (values: number[], q: number) => values.toSorted((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))]!;

const highs = await highsSolver();
console.log("computeLayout, exact, from an empty PoP (seeded instances; time limit 5 s per solve):");
console.log(`  ${"hosts".padEnd(6)}${"n".padStart(3)}${"mix alone ms".padStart(14)}${"volume ms".padStart(11)}${"worst ms".padStart(10)}${"gap med".padStart(9)}${"gap worst".padStart(11)}${"limit hit".padStart(11)}${"short".padStart(7)}${"edges".padStart(8)}`);
for (const size of SIZES) {
  const count = INSTANCES[size] ?? 4;
  const mixTimes: number[] = [];
  const volumeTimes: number[] = [];
  const gaps: number[] = [];
  const edges: number[] = [];
  let limitHit = 0;
  let short = 0;
  /** How each instance ended: optimal, time-limit, infeasible, or the heuristic's fallback when HiGHS found nothing in time. */
  const outcomes = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const hosts = randomHosts(size);
    const input: LayoutInput = { hosts, requests: randomRequests(size), current: {} };
    const idle = Object.fromEntries(hosts.map((host) => [host.name, { small: 0, large: 0, vod: 0, live: 0 }]));
    let started = performance.now();
    computeLayout(input, highs);
    mixTimes.push(performance.now() - started);
    started = performance.now();
    const result: LayoutResult = computeLayout({ ...input, volume: { periodSeconds: PERIOD_SECONDS, served: idle } }, highs);
    volumeTimes.push(performance.now() - started);
    gaps.push(result.gap ?? 0);
    edges.push(result.containers);
    limitHit += result.outcome === "time-limit" ? 1 : 0;
    const ended = result.note?.includes("the heuristic's layout is used") === true ? "fallback" : result.outcome;
    outcomes.set(ended, (outcomes.get(ended) ?? 0) + 1);
    short += (result.volume?.shortfall ?? 0) > 0 ? 1 : 0;
  }
  const pct = (value: number) => `${(100 * value).toFixed(2)}%`;
  console.log(
    `  ${String(size).padEnd(6)}${String(count).padStart(3)}${quantile(mixTimes, 0.5).toFixed(0).padStart(14)}${quantile(volumeTimes, 0.5).toFixed(0).padStart(11)}${Math.max(...volumeTimes).toFixed(0).padStart(10)}` +
      `${pct(quantile(gaps, 0.5)).padStart(9)}${pct(Math.max(...gaps)).padStart(11)}${`${limitHit}/${count}`.padStart(11)}${`${short}/${count}`.padStart(7)}${quantile(edges, 0.5).toFixed(0).padStart(8)}` +
      `   (volume ${(quantile(volumeTimes, 0.5) / quantile(mixTimes, 0.5)).toFixed(1)}x mix alone; ${[...outcomes].map(([outcome, n]) => `${n} ${outcome}`).join(", ")})`,
  );
}
