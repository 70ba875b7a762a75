import { InvalidArgumentsError, SolverError } from "../errors.ts";
import { ROLES } from "./model.ts";
import { type Capacity, type Problem, M } from "./problem.ts";

/**
 * What the exact strategy needs of a MILP solver: a model in CPLEX LP format in, the columns'
 * values out. HiGHS (automation/solver) has this shape; the domain never loads it, so it stays pure
 * and a test can inject a solver that fails.
 */
export interface MilpSolver {
  solve(model: string, options: MilpOptions): MilpSolution;
}

export interface MilpOptions {
  /** Seconds the solver may take; at the limit it returns its best solution and the gap. */
  timeLimitSeconds: number;
  /** Values to start from, by column (a MIP start): the running layout, which the solver checks before using. */
  start?: Readonly<Record<string, number>>;
}

export interface MilpSolution {
  /** "time-limit": stopped at the limit with a solution whose optimality is not proved (see gap). "failed": no solution at all. */
  status: "optimal" | "infeasible" | "time-limit" | "failed";
  /** The solver's own word for how it ended, for messages. */
  detail: string;
  /** Each column's value, where there is a solution. */
  values?: Readonly<Record<string, number>>;
  objective?: number;
  /** (solution − proven bound) / |solution|: 0 when optimal. */
  gap?: number;
}

export interface ExactResult {
  x: Uint8Array;
  /**
   * "optimal": the fewest containers that match the mix within the tolerance and carry the demand.
   * "time-limit": the best such layout found in the time, `gap` from the optimum at most.
   * "infeasible": no layout carries the demand and matches the mix within the tolerance; this is
   * the closest: the most demand carried, then the mix as close as it gets, then the fewest containers.
   */
  status: "optimal" | "time-limit" | "infeasible";
  /** Relative optimality gap of the containers' count (0: proved optimal). */
  gap: number;
  /** With status infeasible: the smallest worst share error any layout reaches, where the tolerance could not be kept. */
  closestError?: number;
  /** With status infeasible and a capacity model: the share of the need the layout leaves uncarried (Σ shortfall / Σ need). */
  shortfall?: number;
}

export interface ExactOptions {
  /** Seconds HiGHS may take per solve. Defaults to EXACT_TIME_LIMIT_SECONDS. */
  timeLimitSeconds?: number;
}

/**
 * A period is ten minutes; a decision must leave it nearly whole. At most four solves run in the
 * worst case (the fewest containers, the shortfall, the closest mix, the fewest at those).
 */
export const EXACT_TIME_LIMIT_SECONDS = 5;

/**
 * Problem (1)-(3) as a MILP solved by HiGHS, with the capacity model when the problem has one.
 * Binaries x[h,r]; for every role r, (R_r − tol)·S ≤ D_r ≤ (R_r + tol)·S where D_r = Σ_h w_h x[h,r]
 * and S = Σ_r D_r (the ratio constraint made linear); coverage; and with a capacity model,
 * continuous y[h,r] ≥ 0, the requests/s host h serves of role r: y[h,r] ≤ (what h could serve of r
 * alone)·x[h,r], Σ_r cost·y[h,r] within h's cores and link, Σ_h y[h,r] ≥ the need of r. Minimise the
 * containers, and among layouts with that many the changes from `current` (so an optimal layout
 * equal in size to the running one is kept). The running layout is the solver's start.
 *
 * When no layout meets every constraint, the closest is found in steps, demand first (issue 19: an
 * edge short of capacity fails requests, a mix a little off only balances worse): the least demand
 * any layout leaves uncarried (Σ s[r]/need[r], shortfall s[r] ≥ 0 added to each role's need:
 * what every role on every host leaves); then the smallest worst share error e that carries that
 * much (|D_r − R_r·S| ≤ e·S, e·x[h,r] linearised as z[h,r]); then the fewest containers at both.
 */
export function solveExact(solver: MilpSolver, given: Problem, current: Uint8Array, options: ExactOptions = {}): ExactResult {
  if (!given.weights.some((weight) => weight > 0)) {
    throw new InvalidArgumentsError(["solveExact: no host has spare capacity, so every layout's shares are undefined"]);
  }
  // A capacity model with nothing to carry constrains nothing.
  const { capacity: givenCapacity, ...mixOnly } = given;
  const problem: Problem = givenCapacity === undefined || givenCapacity.needRps.every((need) => need === 0) ? mixOnly : given;
  const solverOptions: MilpOptions = { timeLimitSeconds: options.timeLimitSeconds ?? EXACT_TIME_LIMIT_SECONDS, start: startOf(current) };
  const solved = (what: string, model: string): MilpSolution & { values: Readonly<Record<string, number>> } => {
    const solution = solver.solve(model, solverOptions);
    if ((solution.status !== "optimal" && solution.status !== "time-limit") || solution.values === undefined) {
      throw new SolverError(`HiGHS did not solve ${what}: ${solution.detail}`);
    }
    return { ...solution, values: solution.values };
  };
  const layoutOf = (solution: MilpSolution & { values: Readonly<Record<string, number>> }, rest: Omit<ExactResult, "x" | "gap">): ExactResult => ({
    x: readLayout(solution.values, problem.weights.length),
    gap: solution.gap ?? 0,
    ...rest,
  });

  const first = solver.solve(fewestContainersModel(problem, current, { tolerance: problem.tolerance }), solverOptions);
  if ((first.status === "optimal" || first.status === "time-limit") && first.values !== undefined) {
    return layoutOf({ ...first, values: first.values }, { status: first.status });
  }
  if (first.status !== "infeasible") {
    throw new SolverError(`HiGHS did not solve the fewest-containers layout: ${first.detail}`);
  }
  // Demand first: the least any layout leaves uncarried is what every role on every host leaves.
  const capacity = problem.capacity;
  const everywhere = new Uint8Array(current.length).fill(1);
  const leastShortfall = capacity === undefined ? undefined : shortfallShare(capacity, carried(solver, { ...problem, capacity }, everywhere));
  // Solver tolerances: a hair above each bound, which evaluate() and carried() then report exactly.
  const shortfallCap = leastShortfall === undefined ? undefined : leastShortfall + 1e-7;
  // Then the mix, as close as it gets while carrying that much.
  const closest = solver.solve(closestModel(problem, shortfallCap), solverOptions);
  if (closest.status !== "optimal" || closest.objective === undefined) {
    throw new SolverError(`HiGHS did not solve the closest layout: ${closest.detail}`);
  }
  const closestError = closest.objective > problem.tolerance ? closest.objective : undefined;
  const tolerance = closestError === undefined ? problem.tolerance : closestError + 1e-7;
  const fewest = solved("the fewest containers of the closest layouts", fewestContainersModel(problem, current, { tolerance, ...(shortfallCap === undefined ? {} : { shortfall: shortfallCap }) }));
  // A solution's shortfall columns say what it leaves of each role's need.
  const shortfall = capacity === undefined ? undefined : uncarriedShare(capacity, Float64Array.from(ROLES, (_, r) => capacity.needRps[r]! - (fewest.values[`s${r}`] ?? 0)));
  return layoutOf(fewest, { status: "infeasible", ...(closestError === undefined ? {} : { closestError }), ...(shortfall === undefined ? {} : { shortfall }) });
}

/** Σ_r (need − carried) / need: what solveExact minimises first when the demand is not all carried. */
function shortfallShare(capacity: Capacity, carriedRps: Float64Array): number {
  return ROLES.reduce((sum, _, r) => sum + (capacity.needRps[r]! === 0 ? 0 : (capacity.needRps[r]! - carriedRps[r]!) / capacity.needRps[r]!), 0);
}

/** The share of the whole need that `carriedRps` (per role) leaves uncarried, solver noise (under 1e-6 of it) read as none. */
export function uncarriedShare(capacity: Capacity, carriedRps: ArrayLike<number>): number {
  const need = capacity.needRps.reduce((sum, value) => sum + value, 0);
  const left = ROLES.reduce((sum, _, r) => sum + Math.max(0, capacity.needRps[r]! - carriedRps[r]!), 0);
  const share = need === 0 ? 0 : left / need;
  return share < 1e-6 ? 0 : share;
}

const variable = (h: number, r: number) => `x${h}_${r}`;
const served = (h: number, r: number) => `y${h}_${r}`;

/** The running layout as a MIP start: every x given, so the solver can check it whole. */
function startOf(current: Uint8Array): Record<string, number> {
  const start: Record<string, number> = {};
  current.forEach((bit, i) => (start[variable(Math.floor(i / M), i % M)] = bit));
  return start;
}

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

function shareRows(problem: Problem, tolerance: number): string[] {
  return ROLES.flatMap((_, r) => [
    ` upper${r}:${shareGap(problem, r, problem.demand[r]! + tolerance)} <= 0`,
    ` lower${r}:${shareGap(problem, r, problem.demand[r]! - tolerance)} >= 0`,
  ]);
}

function coverageRows(problem: Problem): string[] {
  const hosts = usefulHosts(problem);
  return ROLES.flatMap((_, r) => (problem.demand[r]! > 0 ? [` cover${r}:${hosts.map((h) => term(1, variable(h, r))).join("")} >= 1`] : []));
}

/** Requests/s host h could serve of role r with all its capacity: the most y[h,r] can be. */
export function aloneRate(capacity: Capacity, h: number, r: number): number {
  const byCpu = capacity.cpuCost[r]! === 0 ? Number.POSITIVE_INFINITY : capacity.cores[h]! / capacity.cpuCost[r]!;
  const byLink = capacity.mbitCost[r]! === 0 ? Number.POSITIVE_INFINITY : capacity.mbps[h]! / capacity.mbitCost[r]!;
  return Math.min(byCpu, byLink, MAX_RATE);
}

/** A bound on any one host's requests/s, so that a role that costs nothing still has a finite big-M. */
const MAX_RATE = 1e7;

/**
 * The capacity model's rows: each host's cores and link shared by what it serves, y only where x,
 * and every role's need carried (less its shortfall s[r], where `withShortfall`).
 */
function capacityRows(capacity: Capacity, hosts: number, withShortfall: boolean): string[] {
  const rows: string[] = [];
  const row = (name: string, terms: string, bound: string) => (terms === "" ? [] : [` ${name}:${terms} ${bound}`]);
  for (let h = 0; h < hosts; h++) {
    rows.push(...row(`cpu${h}`, ROLES.map((_, r) => term(capacity.cpuCost[r]!, served(h, r))).join(""), `<= ${capacity.cores[h]!}`));
    rows.push(...row(`link${h}`, ROLES.map((_, r) => term(capacity.mbitCost[r]!, served(h, r))).join(""), `<= ${capacity.mbps[h]!}`));
    ROLES.forEach((_, r) => rows.push(` only${h}_${r}: ${served(h, r)}${term(-aloneRate(capacity, h, r), variable(h, r))} <= 0`));
  }
  ROLES.forEach((_, r) => {
    if (capacity.needRps[r]! > 0) {
      let row = ` need${r}:`;
      for (let h = 0; h < hosts; h++) {
        row += term(1, served(h, r));
      }
      rows.push(`${row}${withShortfall ? ` + s${r}` : ""} >= ${capacity.needRps[r]!}`);
    }
  });
  return rows;
}

function binaries(hosts: number): string {
  return Array.from({ length: hosts }, (_, h) => ROLES.map((_, r) => variable(h, r)).join(" ")).join("\n ");
}

/** Σ_r s[r] / need[r]: the share of each role's need left uncarried, summed. */
function shortfallTerms(capacity: Capacity): string {
  return ROLES.map((_, r) => (capacity.needRps[r]! > 0 ? term(1 / capacity.needRps[r]!, `s${r}`) : "")).join("");
}

function fewestContainersModel(problem: Problem, current: Uint8Array, at: { tolerance: number; shortfall?: number }): string {
  const hosts = problem.weights.length;
  // Containers count first; a change from the running layout only breaks ties.
  const perContainer = hosts * M + 1;
  let objective = "";
  for (let h = 0; h < hosts; h++) {
    for (let r = 0; r < M; r++) {
      objective += term(perContainer + (current[h * M + r] === 1 ? -1 : 1), variable(h, r));
    }
  }
  const capacity = problem.capacity;
  const rows = [
    ...shareRows(problem, at.tolerance),
    ...coverageRows(problem),
    ...(capacity === undefined ? [] : capacityRows(capacity, hosts, at.shortfall !== undefined)),
    ...(capacity === undefined || at.shortfall === undefined || shortfallTerms(capacity) === "" ? [] : [` shortfall:${shortfallTerms(capacity)} <= ${at.shortfall}`]),
  ];
  return ["Minimize", ` containers:${objective}`, "Subject To", ...rows, "Binary", ` ${binaries(hosts)}`, "End"].join("\n");
}

/**
 * The smallest worst share error e; with a capacity model, among layouts that leave at most
 * `shortfallCap` of the need uncarried.
 */
function closestModel(problem: Problem, shortfallCap?: number): string {
  const hosts = problem.weights.length;
  const weightedZ = () => {
    let row = "";
    for (let h = 0; h < hosts; h++) {
      for (let k = 0; k < M; k++) {
        row += term(-problem.weights[h]!, `z${h}_${k}`);
      }
    }
    return row;
  };
  const rows: string[] = [];
  ROLES.forEach((_, r) => {
    const gap = shareGap(problem, r, problem.demand[r]!);
    // gap ≤ e·S and −gap ≤ e·S, with e·S = Σ w_h z[h,k].
    rows.push(` over${r}:${gap}${weightedZ()} <= 0`);
    rows.push(` under${r}:${negate(gap)}${weightedZ()} <= 0`);
  });
  for (let h = 0; h < hosts; h++) {
    for (let k = 0; k < M; k++) {
      const z = `z${h}_${k}`;
      const x = variable(h, k);
      rows.push(` zE${h}_${k}: ${z} - e <= 0`, ` zX${h}_${k}: ${z} - ${x} <= 0`, ` zL${h}_${k}: ${z} - e - ${x} >= -1`);
    }
  }
  const capacity = problem.capacity;
  if (capacity !== undefined && shortfallCap !== undefined) {
    rows.push(...capacityRows(capacity, hosts, true));
    const terms = shortfallTerms(capacity);
    if (terms !== "") {
      rows.push(` shortfall:${terms} <= ${shortfallCap}`);
    }
  }
  const bounds = [" 0 <= e <= 1", ...Array.from({ length: hosts }, (_, h) => ROLES.map((_, k) => ` 0 <= z${h}_${k} <= 1`).join("\n"))];
  return ["Minimize", " error: e", "Subject To", ...rows, ...coverageRows(problem), "Bounds", ...bounds, "Binary", ` ${binaries(hosts)}`, "End"].join("\n");
}

function negate(row: string): string {
  return row.replace(/ ([+-]) /g, (_, sign: string) => ` ${sign === "+" ? "-" : "+"} `);
}

function readLayout(values: Readonly<Record<string, number>>, hosts: number): Uint8Array {
  const x = new Uint8Array(hosts * M);
  for (let h = 0; h < hosts; h++) {
    for (let r = 0; r < M; r++) {
      x[h * M + r] = (values[variable(h, r)] ?? 0) > 0.5 ? 1 : 0;
    }
  }
  return x;
}

/** What a given layout carries of each role's need (requests/s), as a linear program: the most it can, the rest its shortfall. */
export function carried(solver: MilpSolver, problem: Problem & { capacity: Capacity }, x: Uint8Array): Float64Array {
  const capacity = problem.capacity;
  const hosts = problem.weights.length;
  const rows = capacityRows(capacity, hosts, true);
  const fixed = x.reduce<string[]>((bounds, bit, i) => [...bounds, ` ${variable(Math.floor(i / M), i % M)} = ${bit}`], []);
  const model = ["Minimize", ` shortfall:${shortfallTerms(capacity)}`, "Subject To", ...rows, "Bounds", ...fixed, "End"].join("\n");
  const solution = solver.solve(model, { timeLimitSeconds: EXACT_TIME_LIMIT_SECONDS });
  if (solution.status !== "optimal" || solution.values === undefined) {
    throw new SolverError(`HiGHS did not find what the layout carries: ${solution.detail}`);
  }
  return Float64Array.from(ROLES, (_, r) => Math.max(0, capacity.needRps[r]! - (solution.values![`s${r}`] ?? 0)));
}
