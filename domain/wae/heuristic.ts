import { type Problem, M, closer, evaluate } from "./problem.ts";

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
