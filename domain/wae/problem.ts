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

/** Roles per host in a layout matrix. */
export const M = ROLES.length;

export interface Problem {
  /** Spare-capacity weight of each host (model.ts hostWeight), in host order. */
  weights: Float64Array;
  /** R^N by role, ROLES order. */
  demand: Float64Array;
  tolerance: number;
  /** The demand's volume and what the hosts can carry (capacity.ts); without it, the paper's model: the mix alone. */
  capacity?: Capacity;
}

/** The capacity model as the MILP reads it (capacity.ts makes it from reports). */
export interface Capacity {
  /** Requests/s each role's edges must be able to serve, headroom included, ROLES order. */
  needRps: Float64Array;
  /** Cores each host gives its edges, host order. */
  cores: Float64Array;
  /** Mbit/s each host gives its edges, host order. */
  mbps: Float64Array;
  /** Core-seconds one request of each role costs, ROLES order. */
  cpuCost: Float64Array;
  /** Megabits one request of each role sends, ROLES order. */
  mbitCost: Float64Array;
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
export function closer(a: Evaluation, b: Evaluation): boolean {
  return a.worstError < b.worstError - SLACK || (Math.abs(a.worstError - b.worstError) <= SLACK && a.containers < b.containers);
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
