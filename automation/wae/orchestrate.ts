import type { Highs } from "highs";
import { createRequire } from "node:module";
import { ROLES, type Role } from "./model.ts";

/**
 * The orchestration module (seed 002, Algorithm 1 and problem (1)-(3)): which roles run on which
 * host so that every role's share of the PoP's spare capacity is within `tolerance` of its share
 * of the requests, with as few containers as possible and at most one container of a role per
 * host. Layouts are matrices here: x[h × 4 + r] = 1 when host h runs role r (ROLES order).
 *
 * Beyond the published model, every role with demand keeps at least one container on a host with
 * spare capacity ("coverage"): a role without a container could serve none of its requests.
 */

const M = ROLES.length;

export interface Problem {
  /** Spare-capacity weight of each host (model.ts hostWeight), in host order. */
  weights: Float64Array;
  /** R^N by role, ROLES order. */
  demand: Float64Array;
  tolerance: number;
}

export interface Evaluation {
  /** D^N by role, ROLES order. */
  shares: Float64Array;
  worstError: number;
  containers: number;
  /** Every role with demand has a container on a host with spare capacity (or no host has any). */
  covered: boolean;
  feasible: boolean;
}

/** Floating-point slack when checking a solution against the tolerance. */
const SLACK = 1e-9;

export function evaluate(problem: Problem, x: Uint8Array): Evaluation {
  const raw = new Float64Array(M);
  const usefulContainers = new Int32Array(M);
  let containers = 0;
  for (let h = 0; h < problem.weights.length; h++) {
    const weight = problem.weights[h]!;
    for (let r = 0; r < M; r++) {
      if (x[h * M + r] === 1) {
        containers++;
        raw[r]! += weight;
        if (weight > 0) {
          usefulContainers[r]!++;
        }
      }
    }
  }
  const total = raw.reduce((sum, value) => sum + value, 0);
  const shares = raw.map((value) => (total === 0 ? 0 : value / total));
  let worstError = 0;
  for (let r = 0; r < M; r++) {
    worstError = Math.max(worstError, Math.abs(shares[r]! - problem.demand[r]!));
  }
  const anySpare = problem.weights.some((weight) => weight > 0);
  const covered = !anySpare || problem.demand.every((share, r) => share === 0 || usefulContainers[r]! > 0);
  return { shares, worstError, containers, covered, feasible: covered && worstError <= problem.tolerance + SLACK };
}

/** Better: smaller worst error, then fewer containers. */
function closer(a: Evaluation, b: Evaluation): boolean {
  return a.worstError < b.worstError - SLACK || (Math.abs(a.worstError - b.worstError) <= SLACK && a.containers < b.containers);
}

export interface HeuristicResult {
  x: Uint8Array;
  sweeps: number;
  /** How it stopped: no change in a sweep, a layout seen before, or the sweep bound. */
  stop: "converged" | "cycle" | "bound";
}

/**
 * Algorithm 1 as published: sweep the roles; a role whose share is more than the tolerance below
 * its demand gets a container on the least loaded host without one, one more than the tolerance
 * above loses the container on the most loaded host with one; recompute the shares after each
 * sweep; stop when a sweep changes nothing. "Least loaded" is the host with the most spare
 * capacity (ties: fewer containers, then host order); "most loaded", the least.
 *
 * Made safe: it starts by covering every role with demand (so it never has to create the first
 * container of a role from a zero share); it never removes the last container of a role with
 * demand; it stops on a layout it has seen before (a cycle), returning the best layout of the
 * cycle; and it stops after a bound on sweeps in any case.
 */
export function solvePaper(problem: Problem, start: Uint8Array): HeuristicResult {
  const hosts = problem.weights.length;
  const x = Uint8Array.from(start);
  const byWeight = Array.from({ length: hosts }, (_, h) => h).sort((a, b) => problem.weights[b]! - problem.weights[a]! || a - b);
  const perHost = new Int32Array(hosts);
  const perRole = new Int32Array(M);
  for (let h = 0; h < hosts; h++) {
    for (let r = 0; r < M; r++) {
      perHost[h]! += x[h * M + r]!;
      perRole[r]! += x[h * M + r]!;
    }
  }
  const set = (h: number, r: number, value: 0 | 1) => {
    const delta = value - x[h * M + r]!;
    x[h * M + r] = value;
    perHost[h]! += delta;
    perRole[r]! += delta;
  };
  // Least loaded host without role r: most spare capacity, then fewest containers.
  const leastLoadedWithout = (r: number): number => {
    let best = -1;
    for (const h of byWeight) {
      if (x[h * M + r] === 1) {
        continue;
      }
      if (best === -1) {
        best = h;
      } else if (problem.weights[h]! < problem.weights[best]!) {
        break;
      } else if (perHost[h]! < perHost[best]!) {
        best = h;
      }
    }
    return best;
  };
  // Most loaded host with role r: least spare capacity, then most containers.
  const mostLoadedWith = (r: number): number => {
    let best = -1;
    for (let k = hosts - 1; k >= 0; k--) {
      const h = byWeight[k]!;
      if (x[h * M + r] === 0) {
        continue;
      }
      if (best === -1) {
        best = h;
      } else if (problem.weights[h]! > problem.weights[best]!) {
        break;
      } else if (perHost[h]! > perHost[best]!) {
        best = h;
      }
    }
    return best;
  };

  for (let r = 0; r < M; r++) {
    if (problem.demand[r]! > 0 && !hasUsefulContainer(problem, x, r)) {
      const host = byWeight.find((h) => x[h * M + r] === 0 && problem.weights[h]! > 0);
      if (host !== undefined) {
        set(host, r, 1);
      }
    }
  }

  const bound = 8 * hosts + 16;
  const seen = new Map<string, number>();
  const history: Uint8Array[] = [];
  for (let sweep = 1; sweep <= bound; sweep++) {
    const { shares } = evaluate(problem, x);
    let changed = false;
    for (let r = 0; r < M; r++) {
      if (problem.demand[r]! - problem.tolerance > shares[r]!) {
        const host = leastLoadedWithout(r);
        if (host !== -1) {
          set(host, r, 1);
          changed = true;
        }
      } else if (problem.demand[r]! + problem.tolerance < shares[r]! && (problem.demand[r] === 0 || perRole[r]! > 1)) {
        const host = mostLoadedWith(r);
        if (host !== -1 && (problem.demand[r] === 0 || !isLastUsefulContainer(problem, x, host, r))) {
          set(host, r, 0);
          changed = true;
        }
      }
    }
    if (!changed) {
      return { x, sweeps: sweep, stop: "converged" };
    }
    const key = Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("latin1");
    const firstSeen = seen.get(key);
    if (firstSeen !== undefined) {
      return { x: bestOf(problem, history.slice(firstSeen)), sweeps: sweep, stop: "cycle" };
    }
    seen.set(key, history.length);
    history.push(Uint8Array.from(x));
  }
  return { x, sweeps: bound, stop: "bound" };
}

function hasUsefulContainer(problem: Problem, x: Uint8Array, r: number): boolean {
  for (let h = 0; h < problem.weights.length; h++) {
    if (x[h * M + r] === 1 && problem.weights[h]! > 0) {
      return true;
    }
  }
  return false;
}

function isLastUsefulContainer(problem: Problem, x: Uint8Array, host: number, r: number): boolean {
  if (problem.weights[host] === 0) {
    return false;
  }
  for (let h = 0; h < problem.weights.length; h++) {
    if (h !== host && x[h * M + r] === 1 && problem.weights[h]! > 0) {
      return false;
    }
  }
  return true;
}

function bestOf(problem: Problem, layouts: Uint8Array[]): Uint8Array {
  let best = layouts[0]!;
  let bestEvaluation = evaluate(problem, best);
  for (const layout of layouts.slice(1)) {
    const evaluation = evaluate(problem, layout);
    if (closer(evaluation, bestEvaluation)) {
      best = layout;
      bestEvaluation = evaluation;
    }
  }
  return best;
}

export interface ExactResult {
  x: Uint8Array;
  /** Optimal: the fewest containers within the tolerance. Infeasible: no layout is within it; x is the closest. */
  status: "optimal" | "infeasible";
  /** With status infeasible: the smallest worst share error any layout reaches. */
  closestError?: number;
}

/**
 * HiGHS's loader, from its CommonJS build: the package's one set of types is read as CommonJS under
 * nodenext and as ES module by Node, so an ES default import type-checks as one thing and runs as
 * another; require() gives the loader function either way.
 */
const loadHighs = createRequire(import.meta.url)("highs") as () => Promise<Highs>;

let highs: Promise<Highs> | undefined;
/** HiGHS, compiled to WebAssembly, loaded once per process. */
export function highsSolver(): Promise<Highs> {
  highs ??= loadHighs();
  return highs;
}

/** HiGHS answered with something other than a proof. */
export class SolverError extends Error {
  override readonly name = "SolverError";
}

export interface ExactOptions {
  /** Seconds HiGHS may take per solve. Defaults to EXACT_TIME_LIMIT_SECONDS. */
  timeLimitSeconds?: number;
}

export const EXACT_TIME_LIMIT_SECONDS = 10;

/**
 * Problem (1)-(3) as a MILP solved by HiGHS: binaries x[h,r]; for every role r,
 * (R_r − tol)·S ≤ D_r ≤ (R_r + tol)·S where D_r = Σ_h w_h x[h,r] and S = Σ_r D_r (the ratio
 * constraint made linear); coverage; minimise the containers, and among layouts with that many,
 * the changes from `current` (so an optimal layout equal in size to the running one is kept).
 *
 * When no layout is within the tolerance the model is infeasible; a second MILP then finds the
 * smallest worst error e (|D_r − R_r·S| ≤ e·S, with e·x[h,r] linearised as z[h,r]), and the first
 * is solved again at that tolerance for the fewest containers: the closest layout.
 */
export function solveExact(highs: Highs, problem: Problem, current: Uint8Array, options: ExactOptions = {}): ExactResult {
  if (!problem.weights.some((weight) => weight > 0)) {
    throw new Error("solveExact: no host has spare capacity, so every layout's shares are undefined");
  }
  const solverOptions = { output_flag: false, time_limit: options.timeLimitSeconds ?? EXACT_TIME_LIMIT_SECONDS };
  const fewest = (tolerance: number) => highs.solve(fewestContainersModel(problem, current, tolerance), solverOptions);

  const first = fewest(problem.tolerance);
  if (first.Status === "Optimal") {
    return { x: readLayout(first.Columns, problem.weights.length), status: "optimal" };
  }
  if (first.Status !== "Infeasible") {
    throw new SolverError(`HiGHS did not prove the fewest-containers layout: status "${first.Status}"`);
  }
  const closest = highs.solve(closestModel(problem), solverOptions);
  if (closest.Status !== "Optimal") {
    throw new SolverError(`HiGHS did not prove the closest layout: status "${closest.Status}"`);
  }
  const closestError = closest.ObjectiveValue;
  // Solver tolerances: allow the closest error plus a hair, which evaluate() then reports exactly.
  const second = fewest(closestError + 1e-7);
  if (second.Status !== "Optimal") {
    throw new SolverError(`HiGHS did not prove the fewest containers at the closest error: status "${second.Status}"`);
  }
  return { x: readLayout(second.Columns, problem.weights.length), status: "infeasible", closestError };
}

const variable = (h: number, r: number) => `x${h}_${r}`;

/** Hosts that add capacity; coverage needs one of them, if there are any. */
function usefulHosts(problem: Problem): number[] {
  const useful = [...problem.weights.keys()].filter((h) => problem.weights[h]! > 0);
  return useful.length > 0 ? useful : [...problem.weights.keys()];
}

function term(coefficient: number, name: string): string {
  return Math.abs(coefficient) < 1e-12 ? "" : ` ${coefficient < 0 ? "-" : "+"} ${Math.abs(coefficient)} ${name}`;
}

/** Σ_h Σ_k w_h ([k = r] − share) x[h,k]: D_r − share·S. */
function shareGap(problem: Problem, r: number, share: number): string {
  let row = "";
  for (let h = 0; h < problem.weights.length; h++) {
    for (let k = 0; k < M; k++) {
      row += term(problem.weights[h]! * ((k === r ? 1 : 0) - share), variable(h, k));
    }
  }
  return row;
}

function coverageRows(problem: Problem): string[] {
  const hosts = usefulHosts(problem);
  return ROLES.flatMap((_, r) => (problem.demand[r]! > 0 ? [` cover${r}:${hosts.map((h) => term(1, variable(h, r))).join("")} >= 1`] : []));
}

function binaries(hosts: number): string {
  return Array.from({ length: hosts }, (_, h) => ROLES.map((_, r) => variable(h, r)).join(" ")).join("\n ");
}

function fewestContainersModel(problem: Problem, current: Uint8Array, tolerance: number): string {
  const hosts = problem.weights.length;
  // Containers count first; a change from the running layout only breaks ties.
  const perContainer = hosts * M + 1;
  let objective = "";
  for (let h = 0; h < hosts; h++) {
    for (let r = 0; r < M; r++) {
      objective += term(perContainer + (current[h * M + r] === 1 ? -1 : 1), variable(h, r));
    }
  }
  const rows = ROLES.flatMap((_, r) => [
    ` upper${r}:${shareGap(problem, r, problem.demand[r]! + tolerance)} <= 0`,
    ` lower${r}:${shareGap(problem, r, problem.demand[r]! - tolerance)} >= 0`,
  ]);
  return ["Minimize", ` containers:${objective}`, "Subject To", ...rows, ...coverageRows(problem), "Binary", ` ${binaries(hosts)}`, "End"].join("\n");
}

function closestModel(problem: Problem): string {
  const hosts = problem.weights.length;
  const weightedZ = (sign: string) => {
    let row = "";
    for (let h = 0; h < hosts; h++) {
      for (let k = 0; k < M; k++) {
        row += term(-problem.weights[h]!, `z${h}_${k}`);
      }
    }
    return sign + row;
  };
  const rows: string[] = [];
  ROLES.forEach((_, r) => {
    const gap = shareGap(problem, r, problem.demand[r]!);
    // gap ≤ e·S and −gap ≤ e·S, with e·S = Σ w_h z[h,k].
    rows.push(` over${r}:${gap}${weightedZ("")} <= 0`);
    rows.push(` under${r}:${negate(gap)}${weightedZ("")} <= 0`);
  });
  for (let h = 0; h < hosts; h++) {
    for (let k = 0; k < M; k++) {
      const z = `z${h}_${k}`;
      const x = variable(h, k);
      rows.push(` zE${h}_${k}: ${z} - e <= 0`, ` zX${h}_${k}: ${z} - ${x} <= 0`, ` zL${h}_${k}: ${z} - e - ${x} >= -1`);
    }
  }
  const bounds = [" 0 <= e <= 1", ...Array.from({ length: hosts }, (_, h) => ROLES.map((_, k) => ` 0 <= z${h}_${k} <= 1`).join("\n"))];
  return ["Minimize", " error: e", "Subject To", ...rows, ...coverageRows(problem), "Bounds", ...bounds, "Binary", ` ${binaries(hosts)}`, "End"].join("\n");
}

function negate(row: string): string {
  return row.replace(/ ([+-]) /g, (_, sign: string) => ` ${sign === "+" ? "-" : "+"} `);
}

function readLayout(columns: Record<string, { Primal?: number } | undefined>, hosts: number): Uint8Array {
  const x = new Uint8Array(hosts * M);
  for (let h = 0; h < hosts; h++) {
    for (let r = 0; r < M; r++) {
      x[h * M + r] = (columns[variable(h, r)]?.Primal ?? 0) > 0.5 ? 1 : 0;
    }
  }
  return x;
}

/** The roles of host h in layout x. */
export function rolesOf(x: Uint8Array, h: number): Role[] {
  return ROLES.filter((_, r) => x[h * M + r] === 1);
}

/** Layout matrix from role lists, in host order. */
export function toMatrix(hostNames: readonly string[], layout: Readonly<Record<string, readonly Role[]>>): Uint8Array {
  const x = new Uint8Array(hostNames.length * M);
  hostNames.forEach((name, h) => {
    for (const role of layout[name] ?? []) {
      x[h * M + ROLES.indexOf(role)] = 1;
    }
  });
  return x;
}
