import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { highsSolver } from "../../automation/solver/highs.ts";
import { type MilpSolver, carried, solveExact } from "../../domain/wae/milp.ts";
import { type Capacity, type Problem, evaluate } from "../../domain/wae/problem.ts";

/**
 * The exact strategy with the capacity model (issue 19): the fewest containers whose shares match
 * the mix within the tolerance and whose hosts can carry every role's need, checked against every
 * layout of small PoPs.
 */

const M = 4;
let highs: MilpSolver;

beforeAll(async () => {
  highs = await highsSolver();
});

/** Core-seconds and megabits per request of each role, ROLES order (small, large, vod, live). */
const CPU = [0.001, 0.004, 0.003, 0.003];
const MBIT = [0.1, 16, 5, 7];

type VolumeProblem = Problem & { capacity: Capacity };

function problemOf(weights: number[], requestsPerSecond: number[], cores: number[], mbps: number[], tolerance = 0.1): VolumeProblem {
  const total = requestsPerSecond.reduce((a, b) => a + b, 0);
  return {
    weights: Float64Array.from(weights),
    demand: Float64Array.from(requestsPerSecond, (r) => (total === 0 ? 0 : r / total)),
    tolerance,
    capacity: {
      needRps: Float64Array.from(requestsPerSecond),
      cores: Float64Array.from(cores),
      mbps: Float64Array.from(mbps),
      cpuCost: Float64Array.from(CPU),
      mbitCost: Float64Array.from(MBIT),
    },
  };
}

/** The share of the need a layout leaves uncarried, as solveExact minimises it: Σ_r shortfall_r / need_r. */
function shortfallOf(problem: VolumeProblem, x: Uint8Array): number {
  const got = carried(highs, problem, x);
  return problem.capacity.needRps.reduce((sum, wanted, r) => sum + (wanted === 0 ? 0 : (wanted - got[r]!) / wanted), 0);
}

const carriesAll = (problem: VolumeProblem, x: Uint8Array) => shortfallOf(problem, x) <= 1e-6;

/**
 * The oracle, over every layout: the fewest containers that are covered, within the tolerance and
 * carry the need; else the closest as solveExact defines it: the least shortfall any layout leaves,
 * then the least worst error among the layouts that leave no more, then the fewest containers.
 */
function bruteForce(problem: VolumeProblem): { feasibleMin?: number; shortfall: number; containers: number; error: number } {
  const cells = problem.weights.length * M;
  const layouts = Array.from({ length: 2 ** cells }, (_, mask) => Uint8Array.from({ length: cells }, (_, i) => (mask >> i) & 1))
    .map((x) => ({ x, evaluation: evaluate(problem, x) }))
    .filter(({ evaluation }) => evaluation.covered)
    .sort((a, b) => a.evaluation.containers - b.evaluation.containers);
  for (const { x, evaluation } of layouts) {
    if (evaluation.feasible && carriesAll(problem, x)) {
      return { feasibleMin: evaluation.containers, shortfall: 0, containers: evaluation.containers, error: evaluation.worstError };
    }
  }
  const scored = layouts.map((layout) => ({ ...layout, shortfall: shortfallOf(problem, layout.x) }));
  const leastShortfall = Math.min(...scored.map(({ shortfall }) => shortfall));
  const carrying = scored.filter(({ shortfall }) => shortfall <= leastShortfall + 1e-6);
  const leastError = Math.min(...carrying.map(({ evaluation }) => evaluation.worstError));
  const tolerance = Math.max(problem.tolerance, leastError) + 1e-7;
  const best = carrying.filter(({ evaluation }) => evaluation.worstError <= tolerance)[0]!;
  return { shortfall: leastShortfall, containers: best.evaluation.containers, error: leastError };
}

const rates = fc.tuple(fc.nat(400), fc.nat(60), fc.nat(100), fc.nat(100)).filter((r) => r.some((v) => v > 0));
const host = fc.record({ weight: fc.double({ min: 0.05, max: 1, noNaN: true }), cores: fc.double({ min: 0.05, max: 1.5, noNaN: true }), mbps: fc.double({ min: 50, max: 1500, noNaN: true }) });

describe("the exact strategy with the capacity model, against every layout", () => {
  // Two hosts: 256 layouts, each the oracle checks with a linear program of its own.
  it("finds the fewest containers that match the mix and carry the need, or the closest layout there is (up to 2 hosts)", () => {
    fc.assert(
      fc.property(fc.array(host, { minLength: 1, maxLength: 2 }), rates, fc.constantFrom(0.1, 0.2), (hosts, rps, tolerance) => {
        const problem = problemOf(hosts.map((h) => h.weight), rps, hosts.map((h) => h.cores), hosts.map((h) => h.mbps), tolerance);
        const oracle = bruteForce(problem);
        const exact = solveExact(highs, problem, new Uint8Array(hosts.length * M));
        const evaluation = evaluate(problem, exact.x);
        if (oracle.feasibleMin !== undefined) {
          expect(exact.status).toBe("optimal");
          expect(exact.gap).toBe(0);
          expect(evaluation.feasible).toBe(true);
          expect(carriesAll(problem, exact.x)).toBe(true);
          expect(evaluation.containers).toBe(oracle.feasibleMin);
        } else {
          expect(exact.status).toBe("infeasible");
          expect(shortfallOf(problem, exact.x)).toBeCloseTo(oracle.shortfall, 5);
          expect(Math.max(evaluation.worstError, problem.tolerance)).toBeCloseTo(Math.max(oracle.error, problem.tolerance), 6);
          expect(evaluation.containers).toBe(oracle.containers);
        }
      }),
      { numRuns: 25, seed: 19 },
    );
  });

  // Three hosts: 4,096 layouts; a few instances, seeded, each under seconds when a layout fits.
  it("does the same on three hosts", () => {
    fc.assert(
      fc.property(fc.array(host, { minLength: 3, maxLength: 3 }), rates, (hosts, rps) => {
        const problem = problemOf(hosts.map((h) => h.weight), rps, hosts.map((h) => h.cores), hosts.map((h) => h.mbps), 0.1);
        const oracle = bruteForce(problem);
        const exact = solveExact(highs, problem, new Uint8Array(hosts.length * M));
        expect(exact.status).toBe(oracle.feasibleMin === undefined ? "infeasible" : "optimal");
        expect(shortfallOf(problem, exact.x)).toBeCloseTo(oracle.shortfall, 5);
        expect(evaluate(problem, exact.x).containers).toBe(oracle.containers);
      }),
      { numRuns: 6, seed: 3 },
    );
  }, 120_000);

  it("puts more containers where the volume needs them: the same mix at three times the volume", () => {
    // Four equal hosts, each with a core for its edges: the evening's small files need two hosts' CPU.
    const hosts = [1, 1, 1, 1];
    const quiet = solveExact(highs, problemOf(hosts, [600, 0, 0, 0], [1, 1, 1, 1], [1000, 1000, 1000, 1000]), new Uint8Array(16));
    const busy = solveExact(highs, problemOf(hosts, [1800, 0, 0, 0], [1, 1, 1, 1], [1000, 1000, 1000, 1000]), new Uint8Array(16));
    expect([quiet.status, busy.status]).toEqual(["optimal", "optimal"]);
    expect(quiet.x.reduce((sum, bit) => sum + bit, 0)).toBe(1);
    expect(busy.x.reduce((sum, bit) => sum + bit, 0)).toBe(2);
  });

  it("says how much it cannot carry when the PoP is too small, and carries the most it can", () => {
    // 1,000 small requests/s at 1 ms each need a core; the two hosts have half a core each... and 0.2 more demand than that.
    const problem = problemOf([1, 1], [1200, 0, 0, 0], [0.5, 0.5], [1000, 1000]);
    const exact = solveExact(highs, problem, new Uint8Array(8));
    expect(exact.status).toBe("infeasible");
    expect(exact.shortfall).toBeCloseTo(200 / 1200, 6);
    expect(Array.from(carried(highs, problem, exact.x))).toEqual([1000, 0, 0, 0]);
  });
});

describe("a returned layout never violates capacity when one that satisfies it exists", () => {
  it("carries the whole need whenever every role on every host would (up to 8 hosts)", () => {
    fc.assert(
      fc.property(fc.array(host, { minLength: 1, maxLength: 8 }), rates, (hosts, rps) => {
        const problem = problemOf(hosts.map((h) => h.weight), rps, hosts.map((h) => h.cores), hosts.map((h) => h.mbps), 0.2);
        const everything = new Uint8Array(hosts.length * M).fill(1);
        fc.pre(carriesAll(problem, everything));
        // Every role everywhere carries it, so some layout does: the one returned must, whatever the mix says.
        const exact = solveExact(highs, problem, new Uint8Array(hosts.length * M));
        expect(carriesAll(problem, exact.x)).toBe(true);
        expect(exact.shortfall ?? 0).toBe(0);
      }),
      { numRuns: 40, seed: 1907 },
    );
  });
});
