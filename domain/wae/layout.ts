import { z } from "zod";
import { SolverError } from "../errors.ts";
import { expected, parseOrThrow } from "../validation.ts";
import { DEFAULT_REQUEST_COSTS, type RequestCosts, hostCapacity } from "./capacity.ts";
import { solvePaper } from "./heuristic.ts";
import { type MilpSolver, aloneRate, carried, solveExact, uncarriedShare } from "./milp.ts";
import { type Host, type Layout, ROLES, type Role, type RoleCounts, demandShares, hostWeight, mapRoles } from "./model.ts";
import { type Capacity, type Problem, evaluate, rolesOf, toMatrix } from "./problem.ts";
import { MAX_LINK_MBPS, edgeRole, nonNegative, requestCounts } from "./schema.ts";

/** The paper's threshold: every role's capacity share within ±0.1 of its request share. */
export const DEFAULT_TOLERANCE = 0.1;
/**
 * Capacity kept beyond the period's demand: a quarter, the slack Google's Autopilot runs its fleet
 * at (23 %, ../shared/reference/loops-and-scale.md), which also absorbs a period's growth before
 * the next decision.
 */
export const DEFAULT_HEADROOM = 0.25;
/** Container changes per period once a PoP runs: each change restarts an edge. */
export const DEFAULT_MAX_MOVES = 8;
/**
 * A new layout is aimed at this fraction of the tolerance, and the running one is kept while it is
 * within the whole tolerance: measurement noise smaller than the margin cannot flip the layout
 * back and forth between periods.
 */
export const HYSTERESIS = 0.75;

export type Strategy = "exact" | "paper";

/** The demand's volume and what serves it (issue 19); without it a layout matches the mix alone, as the paper's model does. */
export interface Volume {
  /** Length of the period the requests were counted over, seconds. */
  periodSeconds: number;
  /** Requests each host's edges served in the period, by host: what tells its background load from its edges'. */
  served: Record<string, RoleCounts>;
  /** What a request of each role costs (capacity.ts calibrate). Defaults to DEFAULT_REQUEST_COSTS. */
  costs?: RequestCosts;
  /** Capacity kept beyond the demand, as a fraction of it. Defaults to DEFAULT_HEADROOM. */
  headroom?: number;
}

export interface LayoutInput {
  hosts: Host[];
  /** Requests per role in the period, summed over the PoP. */
  requests: RoleCounts;
  /** The running layout. */
  current: Layout;
  /** Defaults to DEFAULT_TOLERANCE. */
  tolerance?: number;
  /** "auto" (default): exact, at every size (its time limit bounds it); "paper": the paper's Algorithm 1, for comparison. */
  strategy?: Strategy | "auto";
  /** The demand's volume; with it, every role's edges must carry their requests (exact only). */
  volume?: Volume;
  /** Defaults to DEFAULT_MAX_MOVES; an empty PoP is laid out in one go. */
  maxMoves?: number;
}

export interface Move {
  host: string;
  role: Role;
  action: "add" | "remove";
}

export interface LayoutResult {
  layout: Layout;
  /** Every role's share within the tolerance of its demand, every role with demand served, and with a volume every role's need carried. */
  feasible: boolean;
  /** D^N of the layout. */
  shares: RoleCounts;
  /** R^N of the period. */
  demand: RoleCounts;
  worstError: number;
  /** The tolerance the shares were held to. */
  tolerance: number;
  containers: number;
  strategy: Strategy;
  /** From the running layout to this one. */
  moves: Move[];
  /** The running layout was within the tolerance and is kept. */
  kept: boolean;
  /** When the moves were bounded: the layout later periods move on towards. */
  target?: Layout;
  /** Exact: "optimal", or "infeasible" (no layout within the tolerance; this is the closest). Paper: how it stopped. */
  outcome: string;
  /** Why the result is what it is, when that is not the plain case. */
  note?: string;
  /** Exact: the relative optimality gap of the containers' count (0: proved; above 0: the time limit stopped it). */
  gap?: number;
  /** With a volume: each role's need (requests/s, headroom included), what the layout carries of it, and the share of the need left uncarried. */
  volume?: { needRps: RoleCounts; carriedRps: RoleCounts; headroom: number; shortfall: number };
}

const positive = (what: string) =>
  z.number({ error: expected("a number", `give the ${what}`) }).positive({ error: (issue) => `${String(issue.input)} is not positive; give the ${what}` });

const requestCost = z.strictObject(
  { cpuSeconds: positive("core-seconds one request costs"), bytes: nonNegative("bytes one request sends") },
  { error: expected("a map", "give { cpuSeconds, bytes }") },
);

const layoutInput = z
  .strictObject(
    {
      hosts: z
        .array(
          z.strictObject(
            {
              name: z.string({ error: expected("a string", "name the host") }).min(1, { error: "is empty; name the host" }),
              cpu: z.strictObject({ capacityCores: positive("number of cores"), usedCores: nonNegative("cores in use") }, { error: expected("a map", "give { capacityCores, usedCores }") }),
              network: z.strictObject(
                {
                  linkMbps: positive("link capacity in Mbit/s").max(MAX_LINK_MBPS, {
                    error: (issue) => `${String(issue.input)} is more than ${MAX_LINK_MBPS}; give the link capacity in Mbit/s (not kbit/s)`,
                  }),
                  txMbps: nonNegative("transmitted Mbit/s"),
                },
                { error: expected("a map", "give { linkMbps, txMbps }") },
              ),
            },
            { error: expected("a map", "give a host { name, cpu, network }") },
          ),
          { error: expected("a list of hosts", "give at least one { name, cpu, network }") },
        )
        .min(1, { error: "is empty; a PoP needs at least one host" }),
      requests: requestCounts,
      current: z.record(z.string(), z.array(edgeRole, { error: expected("a list of edge roles") }), { error: expected("a map from host name to edge roles") }),
      tolerance: z
        .number({ error: expected("a number", "give the tolerance as a fraction, e.g. 0.1") })
        .gt(0, { error: "must be above 0" })
        .lt(1, { error: "must be below 1" })
        .optional(),
      strategy: z.enum(["auto", "exact", "paper"], { error: (issue) => `${JSON.stringify(issue.input)} is not a strategy; use "auto", "exact" or "paper"` }).optional(),
      maxMoves: z
        .number({ error: expected("a number", "give the most changes one period may make, e.g. 2") })
        .int({ error: (issue) => `${String(issue.input)} is not a whole number; give the most changes one period may make` })
        .min(1, { error: "must be at least 1" })
        .optional(),
      volume: z
        .strictObject(
          {
            periodSeconds: positive("length of the period in seconds"),
            served: z.record(z.string(), requestCounts, { error: expected("a map from host name to the requests its edges served") }),
            costs: z
              .strictObject(
                Object.fromEntries(ROLES.map((role) => [role, requestCost])) as Record<Role, typeof requestCost>,
                { error: expected("a map", "give each role's { cpuSeconds, bytes } per request") },
              )
              .optional(),
            headroom: z
              .number({ error: expected("a number", "give the capacity kept beyond the demand as a fraction, e.g. 0.25") })
              .min(0, { error: "is negative; give 0 or more" })
              .max(4, { error: "is more than 4 (five times the demand); give the capacity kept beyond the demand as a fraction, e.g. 0.25" })
              .optional(),
          },
          { error: expected("a map", "give { periodSeconds, served, costs?, headroom? }") },
        )
        .optional(),
    },
    { error: expected("a map", "give { hosts, requests, current }") },
  )
  .superRefine((input, ctx) => {
    const names = new Set<string>();
    input.hosts.forEach((host, index) => {
      if (names.has(host.name)) {
        ctx.addIssue({ code: "custom", path: ["hosts", index, "name"], message: `"${host.name}" is already the name of another host; give every host a unique name` });
      }
      names.add(host.name);
    });
    for (const host of Object.keys(input.volume?.served ?? {})) {
      if (!names.has(host)) {
        ctx.addIssue({ code: "custom", path: ["volume", "served", host], message: "names no host; remove it or add the host to hosts" });
      }
    }
    for (const [host, roles] of Object.entries(input.current)) {
      if (!names.has(host)) {
        ctx.addIssue({ code: "custom", path: ["current", host], message: "names no host; remove it or add the host to hosts" });
      }
      if (new Set(roles).size !== roles.length) {
        ctx.addIssue({ code: "custom", path: ["current", host], message: "lists a role twice; a host runs at most one container of each role" });
      }
    }
  });

/** Validates a layout input; errors name each bad field under `keyPrefix`. */
export function parseLayoutInput(value: unknown, keyPrefix = "input"): LayoutInput {
  return parseOrThrow(layoutInput, value, keyPrefix);
}

/**
 * The WAE's orchestration for one period: keeps the running layout while it is within the
 * tolerance; otherwise computes a new one (exact or heuristic) aimed at HYSTERESIS × tolerance,
 * and moves towards it by at most maxMoves changes. A PoP always gets a layout: when none is within
 * the tolerance the closest is returned with feasible: false.
 *
 * Synchronous given its solver (automation/solver loads HiGHS); the heuristic never calls it.
 */
export function computeLayout(raw: LayoutInput, solver: MilpSolver): LayoutResult {
  const input = parseLayoutInput(raw);
  const names = input.hosts.map((host) => host.name);
  const weights = Float64Array.from(input.hosts, hostWeight);
  const demand = demandShares(input.requests);
  const tolerance = input.tolerance ?? DEFAULT_TOLERANCE;
  const strategy: Strategy = input.strategy === "paper" ? "paper" : "exact";
  const headroom = input.volume?.headroom ?? DEFAULT_HEADROOM;
  // The paper's heuristic knows no volume: it lays out the mix alone, and the result says so.
  const volume = strategy === "exact" ? input.volume : undefined;
  /** The problem with the volume's need at `margin` above the demand, where there is a volume. */
  const at = (problemTolerance: number, margin: number): Problem => ({
    weights,
    demand: Float64Array.from(ROLES, (r) => demand[r]),
    tolerance: problemTolerance,
    ...(volume === undefined ? {} : { capacity: capacityOf(input, volume, margin) }),
  });
  const problem = at(tolerance, headroom);
  const current = toMatrix(names, input.current);
  const volumeNote = input.volume !== undefined && strategy === "paper" ? { note: "the paper's heuristic lays out the mix alone: the volume was not considered" } : {};
  const result = (x: Uint8Array, outcome: string, extra: Partial<LayoutResult> = {}): LayoutResult =>
    describe(names, problem, demand, current, x, solver, headroom, { strategy, outcome, kept: false, ...volumeNote, ...extra });

  const totalRequests = ROLES.reduce((sum, r) => sum + input.requests[r], 0);
  const anySpare = weights.some((weight) => weight > 0);
  if (totalRequests === 0 || !anySpare) {
    // Nothing to match: keep what runs, and make sure an empty PoP can serve every role.
    const x = Uint8Array.from(current);
    const order = [...weights.keys()].sort((a, b) => weights[b]! - weights[a]! || a - b);
    ROLES.forEach((_, r) => {
      if (!order.some((h) => x[h * ROLES.length + r] === 1)) {
        x[order[0]! * ROLES.length + r] = 1;
      }
    });
    const note = totalRequests === 0 ? "no requests this period: the running layout is kept" : "no host has spare CPU or link capacity: the running layout is kept";
    return result(x, "kept", { kept: true, note });
  }

  // The running layout stands while it is within the tolerance and carries the demand with half
  // the headroom; a new one aims at HYSTERESIS × the tolerance and the whole headroom.
  const runningFits = current.some((bit) => bit === 1) && fits(solver, at(tolerance, headroom / 2), current);
  if (runningFits && volume === undefined) {
    return result(current, "kept", { kept: true });
  }

  let target: { x: Uint8Array; outcome: string; gap?: number; note?: string };
  try {
    const tight = at(tolerance * HYSTERESIS, headroom);
    target = solve(solver, strategy, tight, current);
    if (!fits(solver, tight, target.x)) {
      // No layout with a margin: take what the full tolerance allows (or the closest).
      target = solve(solver, strategy, problem, current);
    }
  } catch (error) {
    if (!(error instanceof SolverError)) {
      throw error;
    }
    const fallback = solvePaper(problem, current);
    const capacity = problem.capacity;
    target =
      capacity === undefined
        ? { x: fallback.x, outcome: fallback.stop, note: `${error.message}; the heuristic's layout is used` }
        : { x: withCapacity(capacity, fallback.x), outcome: fallback.stop, note: `${error.message}; the heuristic's layout is used, with edges added where the volume needs them` };
  }
  const gap = target.gap === undefined ? {} : { gap: target.gap };

  // With a volume, the running layout stands while it is nearly as good as the target: it carries
  // the demand with half the headroom wherever the target carries it all (and leaves no more of it
  // uncarried where no layout can), its mix is no further off than the target's by more than the
  // hysteresis margin, and it is at most a tenth larger. Where no layout meets the mix and the
  // volume at once, the closest one moves with every period's noise; the running one is kept
  // unless the new one is better by these margins. The PoP follows demand down, but not every dip
  // (and the PoP loop waits two periods before it removes an edge).
  if (volume !== undefined && current.some((bit) => bit === 1) && nearlyAsGood(solver, at(tolerance, headroom / 2), current, target.x, tolerance * (1 - HYSTERESIS))) {
    return result(current, "kept", { kept: true, ...gap });
  }

  const maxMoves = input.maxMoves ?? DEFAULT_MAX_MOVES;
  const wanted = differences(current, target.x);
  const notes = { ...gap, ...(target.note === undefined ? {} : { note: target.note }) };
  if (current.some((bit) => bit === 1) && wanted.length > maxMoves) {
    let stepped: Uint8Array;
    if (volume === undefined) {
      stepped = stepTowards(problem, current, wanted, maxMoves);
    } else {
      // Capacity comes before the edges it replaces: additions first, so that a bounded step never
      // carries less than the layout it started from.
      const adds = wanted.filter((index) => target.x[index] === 1);
      const added = stepTowards(problem, current, adds, maxMoves);
      const budget = maxMoves - differences(current, added).length;
      stepped = budget > 0 ? stepTowards(problem, added, wanted.filter((index) => target.x[index] === 0), budget) : added;
    }
    return result(stepped, target.outcome, { ...notes, target: toLayout(names, target.x) });
  }
  return result(target.x, target.outcome, notes);
}

/**
 * `x` with edges added until every role's need is carried, as far as an estimate tells: a host's
 * capacity split evenly among its edges (what the real split, an LP, can only better). Each step
 * adds the role furthest short on the host that would give it the most. For when the solver found
 * nothing in time: demand first, as the closest layout is.
 */
function withCapacity(capacity: Capacity, x: Uint8Array): Uint8Array {
  const y = Uint8Array.from(x);
  const hosts = capacity.cores.length;
  const roles = ROLES.length;
  const edgesOn = Int32Array.from({ length: hosts }, (_, h) => ROLES.reduce((sum, _, r) => sum + y[h * roles + r]!, 0));
  const estimate = (r: number) => {
    let rate = 0;
    for (let h = 0; h < hosts; h++) {
      if (y[h * roles + r] === 1) {
        rate += aloneRate(capacity, h, r) / edgesOn[h]!;
      }
    }
    return rate;
  };
  for (let step = 0; step < hosts * roles; step++) {
    let neediest = -1;
    let worst = 0;
    ROLES.forEach((_, r) => {
      const need = capacity.needRps[r]!;
      const short = need === 0 ? 0 : (need - estimate(r)) / need;
      if (short > worst) {
        worst = short;
        neediest = r;
      }
    });
    if (neediest < 0) {
      break;
    }
    let best = -1;
    let bestRate = 0;
    for (let h = 0; h < hosts; h++) {
      const rate = y[h * roles + neediest] === 1 ? 0 : aloneRate(capacity, h, neediest) / (edgesOn[h]! + 1);
      if (rate > bestRate) {
        bestRate = rate;
        best = h;
      }
    }
    if (best < 0) {
      break;
    }
    y[best * roles + neediest] = 1;
    edgesOn[best]!++;
  }
  return y;
}

/** The keep rule with a volume: see computeLayout. `problem` holds the need at half the headroom. */
function nearlyAsGood(solver: MilpSolver, problem: Problem, running: Uint8Array, target: Uint8Array, margin: number): boolean {
  const capacity = problem.capacity!;
  const runningEvaluation = evaluate(problem, running);
  if (!runningEvaluation.covered || count(running) > count(target) + Math.floor(count(target) / 10)) {
    return false;
  }
  const uncarried = (x: Uint8Array) => uncarriedShare(capacity, carried(solver, { ...problem, capacity }, x));
  const runningShort = uncarried(running);
  const carriesAsMuch = runningShort === 0 || runningShort <= uncarried(target) + 1e-6;
  const mixAsClose = runningEvaluation.worstError <= Math.max(problem.tolerance, evaluate(problem, target).worstError + margin);
  return carriesAsMuch && mixAsClose;
}

function count(x: Uint8Array): number {
  return x.reduce((sum, bit) => sum + bit, 0);
}

/** Within the tolerance, every role with demand served, and — with a volume — every role's need carried. */
function fits(solver: MilpSolver, problem: Problem, x: Uint8Array): boolean {
  if (!evaluate(problem, x).feasible) {
    return false;
  }
  const capacity = problem.capacity;
  return capacity === undefined || carried(solver, { ...problem, capacity }, x).every((rps, r) => rps >= capacity.needRps[r]! * (1 - 1e-6));
}

/**
 * The capacity model of a period: each role's need (its requests per second, `margin` above them),
 * what each host gives its edges after its background load (capacity.ts hostCapacity, from what
 * its edges served), and the request costs.
 */
function capacityOf(input: LayoutInput, volume: Volume, margin: number): Capacity {
  const costs = volume.costs ?? DEFAULT_REQUEST_COSTS;
  const hosts = input.hosts.map((host) =>
    hostCapacity(
      {
        host: host.name,
        seconds: volume.periodSeconds,
        capacityCores: host.cpu.capacityCores,
        usedCores: host.cpu.usedCores,
        linkMbps: host.network.linkMbps,
        txMbps: host.network.txMbps,
        served: volume.served[host.name] ?? mapRoles(() => 0),
      },
      costs,
    ),
  );
  return {
    needRps: Float64Array.from(ROLES, (role) => (input.requests[role] / volume.periodSeconds) * (1 + margin)),
    cores: Float64Array.from(hosts, (host) => host.cores),
    mbps: Float64Array.from(hosts, (host) => host.mbps),
    cpuCost: Float64Array.from(ROLES, (role) => costs[role].cpuSeconds),
    mbitCost: Float64Array.from(ROLES, (role) => (costs[role].bytes * 8) / 1e6),
  };
}

function solve(solver: MilpSolver, strategy: Strategy, problem: Problem, current: Uint8Array): { x: Uint8Array; outcome: string; gap?: number } {
  if (strategy === "paper") {
    const heuristic = solvePaper(problem, current);
    return { x: heuristic.x, outcome: heuristic.stop };
  }
  const exact = solveExact(solver, problem, current);
  return { x: exact.x, outcome: exact.status, gap: exact.gap };
}

/** Indices of the layout entries that differ. */
function differences(from: Uint8Array, to: Uint8Array): number[] {
  const changed: number[] = [];
  for (let i = 0; i < from.length; i++) {
    if (from[i] !== to[i]) {
      changed.push(i);
    }
  }
  return changed;
}

/**
 * At most `budget` of the wanted changes, each time the one that leaves the layout closest to the
 * demand (worst error, then containers), never leaving a role with demand unserved. Candidates are
 * scored incrementally (O(roles) each), so large PoPs stay fast.
 */
function stepTowards(problem: Problem, current: Uint8Array, wanted: number[], budget: number): Uint8Array {
  const roles = ROLES.length;
  const x = Uint8Array.from(current);
  const raw = new Float64Array(roles);
  const useful = new Int32Array(roles);
  let containers = 0;
  for (let index = 0; index < x.length; index++) {
    if (x[index] === 1) {
      const weight = problem.weights[Math.floor(index / roles)]!;
      raw[index % roles]! += weight;
      useful[index % roles]! += weight > 0 ? 1 : 0;
      containers++;
    }
  }
  const remaining = new Set(wanted);
  for (let step = 0; step < budget && remaining.size > 0; step++) {
    let best: { index: number; error: number; containers: number } | undefined;
    for (const index of remaining) {
      const r = index % roles;
      const weight = problem.weights[Math.floor(index / roles)]!;
      const sign = x[index] === 1 ? -1 : 1;
      if (sign === -1 && weight > 0 && useful[r] === 1 && problem.demand[r]! > 0) {
        continue;
      }
      raw[r]! += sign * weight;
      const total = raw.reduce((sum, value) => sum + value, 0);
      let error = 0;
      for (let k = 0; k < roles; k++) {
        error = Math.max(error, Math.abs((total === 0 ? 0 : raw[k]! / total) - problem.demand[k]!));
      }
      raw[r]! -= sign * weight;
      const after = containers + sign;
      if (best === undefined || error < best.error || (error === best.error && after < best.containers)) {
        best = { index, error, containers: after };
      }
    }
    if (best === undefined) {
      break;
    }
    const r = best.index % roles;
    const weight = problem.weights[Math.floor(best.index / roles)]!;
    const sign = x[best.index] === 1 ? -1 : 1;
    x[best.index] = sign === 1 ? 1 : 0;
    raw[r]! += sign * weight;
    useful[r]! += weight > 0 ? sign : 0;
    containers += sign;
    remaining.delete(best.index);
  }
  return x;
}

function toLayout(names: readonly string[], x: Uint8Array): Layout {
  return Object.fromEntries(names.map((name, h) => [name, rolesOf(x, h)]));
}

function describe(
  names: readonly string[],
  problem: Problem,
  demand: RoleCounts,
  current: Uint8Array,
  x: Uint8Array,
  solver: MilpSolver,
  headroom: number,
  rest: Pick<LayoutResult, "strategy" | "outcome" | "kept"> & Partial<LayoutResult>,
): LayoutResult {
  const evaluation = evaluate(problem, x);
  const moves: Move[] = differences(current, x).map((index) => ({
    host: names[Math.floor(index / ROLES.length)]!,
    role: ROLES[index % ROLES.length]!,
    action: x[index] === 1 ? "add" : "remove",
  }));
  const capacity = problem.capacity;
  let volume: Pick<LayoutResult, "volume"> = {};
  let carriesNeed = true;
  if (capacity !== undefined) {
    const carriedRps = carried(solver, { ...problem, capacity }, x);
    const shortfall = uncarriedShare(capacity, carriedRps);
    carriesNeed = shortfall === 0;
    volume = {
      volume: {
        needRps: Object.fromEntries(ROLES.map((r, i) => [r, capacity.needRps[i]!])) as RoleCounts,
        carriedRps: Object.fromEntries(ROLES.map((r, i) => [r, carriedRps[i]!])) as RoleCounts,
        headroom,
        shortfall,
      },
    };
  }
  return {
    layout: toLayout(names, x),
    feasible: evaluation.feasible && carriesNeed,
    shares: Object.fromEntries(ROLES.map((r, i) => [r, evaluation.shares[i]!])) as RoleCounts,
    demand,
    worstError: evaluation.worstError,
    tolerance: problem.tolerance,
    containers: evaluation.containers,
    moves,
    ...volume,
    ...rest,
  };
}
