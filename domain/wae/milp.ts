import { InvalidArgumentsError, SolverError } from "../errors.ts";
import { ROLES } from "./model.ts";
import { type Problem, M } from "./problem.ts";

/**
 * What the exact strategy needs of a MILP solver: a model in CPLEX LP format in, a status and the
 * columns' values out. HiGHS (automation/solver) has this shape; the domain never loads it, so it
 * stays pure and a test can inject a solver that fails.
 */
export interface MilpSolver {
  solve(
    model: string,
    options: { output_flag: boolean; time_limit: number },
  ): { Status: string; ObjectiveValue: number; Columns: Record<string, MilpColumn | undefined> };
}

/** A column of a solution; an infeasible answer carries no primal values. */
type MilpColumn = { Primal: number } | { Type: string };

export interface ExactResult {
  x: Uint8Array;
  /** Optimal: the fewest containers within the tolerance. Infeasible: no layout is within it; x is the closest. */
  status: "optimal" | "infeasible";
  /** With status infeasible: the smallest worst share error any layout reaches. */
  closestError?: number;
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
export function solveExact(solver: MilpSolver, problem: Problem, current: Uint8Array, options: ExactOptions = {}): ExactResult {
  if (!problem.weights.some((weight) => weight > 0)) {
    throw new InvalidArgumentsError(["solveExact: no host has spare capacity, so every layout's shares are undefined"]);
  }
  const solverOptions = { output_flag: false, time_limit: options.timeLimitSeconds ?? EXACT_TIME_LIMIT_SECONDS };
  const fewest = (tolerance: number) => solver.solve(fewestContainersModel(problem, current, tolerance), solverOptions);

  const first = fewest(problem.tolerance);
  if (first.Status === "Optimal") {
    return { x: readLayout(first.Columns, problem.weights.length), status: "optimal" };
  }
  if (first.Status !== "Infeasible") {
    throw new SolverError(`HiGHS did not prove the fewest-containers layout: status "${first.Status}"`);
  }
  const closest = solver.solve(closestModel(problem), solverOptions);
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

function readLayout(columns: Record<string, MilpColumn | undefined>, hosts: number): Uint8Array {
  const x = new Uint8Array(hosts * M);
  for (let h = 0; h < hosts; h++) {
    for (let r = 0; r < M; r++) {
      const column = columns[variable(h, r)];
      x[h * M + r] = column !== undefined && "Primal" in column && column.Primal > 0.5 ? 1 : 0;
    }
  }
  return x;
}
