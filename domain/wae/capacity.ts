import { SolverError } from "../errors.ts";
import type { MilpSolver } from "./milp.ts";
import { ROLES, type Role, type RoleCounts, mapRoles } from "./model.ts";

/**
 * The capacity model (issue 19): what the edges of each role can serve on a PoP's hosts, so that a
 * layout can be asked to carry the period's demand volume and not only match its mix.
 *
 * A request of role r costs its edge's host `cpuSeconds` core-seconds and sends `bytes` bytes. A
 * host gives its edges what its background load leaves: cores − background cores, link − background
 * traffic, where the background is what the host used beyond what its edges' requests cost. The
 * edges on one host share that; a role's capacity is what its containers can serve together.
 */

/** What one request of a role costs its edge's host. */
export interface RequestCost {
  /** Core-seconds of CPU. */
  cpuSeconds: number;
  /** Bytes sent. */
  bytes: number;
}

export type RequestCosts = Record<Role, RequestCost>;

/**
 * Costs before any calibration. CPU: the loopback data-plane benchmark (test/bench/pop.ts) serves
 * the paper's request mix at about 1,250 requests/s through one edge on two shared cores with the
 * load generator, which bounds a small-file request at under 0.8 ms of CPU; the paper's Table II
 * (seed 002: 5,000 image, 1,500 large-file and 500 stream users; small edge 7 % CPU and 0.2 % of
 * the link, large 5 % and 12 %, stream 2.5 % and 3 %) gives the other roles per user relative to a
 * small-file request: CPU ×2.4 for a large file and ×3.6 for a stream, bytes ×200 and ×150. Bytes:
 * a small file is the benchmark's images (8–13 kB). VoD and live are the paper's one "stream" role.
 * The instance managers' reports replace these as soon as they identify a role (see calibrate).
 */
export const DEFAULT_REQUEST_COSTS: RequestCosts = {
  small: { cpuSeconds: 0.0008, bytes: 12_000 },
  large: { cpuSeconds: 0.0019, bytes: 2_400_000 },
  vod: { cpuSeconds: 0.0029, bytes: 1_800_000 },
  live: { cpuSeconds: 0.0029, bytes: 1_800_000 },
};

/** What one host measured in one period, and what its edges served. */
export interface HostSample {
  host: string;
  /** Length of the period, seconds. */
  seconds: number;
  capacityCores: number;
  usedCores: number;
  linkMbps: number;
  txMbps: number;
  /** Requests its edges served in the period, per role. */
  served: RoleCounts;
}

/** What a host can give its edges, after its background load. */
export interface HostCapacity {
  host: string;
  cores: number;
  mbps: number;
}

/**
 * A calibrated cost is kept within this factor of its default: a role seen only in a noisy period
 * or two must not make the PoP look ten times larger or smaller than it is.
 */
export const CALIBRATION_BOUND = 4;
/**
 * Periods of reports a calibration fits: two hours, long enough that each role's share of a host's
 * load varies beyond measurement noise (a cost is told apart only by how the load moves with it),
 * short enough to follow a change of content (bigger images, a new bitrate).
 */
export const CALIBRATION_PERIODS = 12;
/** A linear program of a few hundred rows: solved in milliseconds, so a second means something is wrong. */
const FIT_TIME_LIMIT_SECONDS = 1;

/** A role's cost is fitted for a measure only where, at its default, it makes this share of what was measured. */
export const MIN_SHARE_TO_CALIBRATE = 0.02;
/** A role is calibrated once this many of its requests per second, summed over the samples, were seen; fewer tell noise from cost. */
export const MIN_RPS_TO_CALIBRATE = 50;

/** Requests per second, per role, from a period's counts. */
export function ratesOf(requests: RoleCounts, seconds: number): RoleCounts {
  return mapRoles((role) => requests[role] / seconds);
}

/** Megabit/s sent by `rps` requests of `bytes` each. */
function mbps(rps: number, bytes: number): number {
  return (rps * bytes * 8) / 1e6;
}

/**
 * What a host can give its edges: its cores and link less the background, the use its edges'
 * requests (at `costs`) do not explain. Never negative; a host whose edges seem to cost more than it
 * used has no background.
 */
export function hostCapacity(sample: HostSample, costs: RequestCosts): HostCapacity {
  const rates = ratesOf(sample.served, sample.seconds);
  const edgeCores = ROLES.reduce((sum, role) => sum + rates[role] * costs[role].cpuSeconds, 0);
  const edgeMbps = ROLES.reduce((sum, role) => sum + mbps(rates[role], costs[role].bytes), 0);
  const backgroundCores = Math.max(0, sample.usedCores - edgeCores);
  const backgroundMbps = Math.max(0, sample.txMbps - edgeMbps);
  return {
    host: sample.host,
    cores: Math.max(0, sample.capacityCores - backgroundCores),
    mbps: Math.max(0, sample.linkMbps - backgroundMbps),
  };
}

/** Requests per second a host's whole capacity would serve of one role alone. */
export function roleRateOn(capacity: HostCapacity, cost: RequestCost): number {
  const byCpu = cost.cpuSeconds === 0 ? Number.POSITIVE_INFINITY : capacity.cores / cost.cpuSeconds;
  const byLink = cost.bytes === 0 ? Number.POSITIVE_INFINITY : capacity.mbps / mbps(1, cost.bytes);
  return Math.min(byCpu, byLink);
}

/** How each role's cost was arrived at. */
export interface Calibration {
  costs: RequestCosts;
  /** Per role: "measured" from the samples, or "default" (too few of its requests seen), and whether the bound clipped it. */
  source: Record<Role, { cpu: "measured" | "default" | "bounded"; bytes: "measured" | "default" | "bounded" }>;
  /** Host-periods the fit used. */
  samples: number;
}

/**
 * Request costs fitted to what the instance managers reported over recent periods: each sample
 * says `used = background(host) + Σ_r cost_r × rate_r`, for CPU and for traffic alike, and the
 * costs (and one background per host) that fit them with the least absolute error — a linear
 * program, solved by the injected solver — are taken. Least absolute error, not least squares: a
 * period whose measurement went wrong (a burst of background work, a counter reset) moves a
 * median, not a mean. A missing period is simply not a sample. A role whose requests were too few,
 * or too small a part of a measure, to tell its cost from noise keeps its default for that measure
 * (see identifiable), as do all of them while there are fewer than two samples per unknown, and
 * every fitted cost stays within CALIBRATION_BOUND of its default.
 */
export function calibrate(samples: readonly HostSample[], solver: MilpSolver, defaults: RequestCosts = DEFAULT_REQUEST_COSTS): Calibration {
  const usable = samples.filter((sample) => sample.seconds > 0);
  const source = Object.fromEntries(ROLES.map((role) => [role, { cpu: "default", bytes: "default" }])) as Calibration["source"];
  const costs = Object.fromEntries(ROLES.map((role) => [role, { ...defaults[role] }])) as RequestCosts;
  const measures = [
    { key: "cpu", measured: (sample: HostSample) => sample.usedCores, defaultOf: (role: Role) => defaults[role].cpuSeconds, set: (role: Role, value: number) => (costs[role].cpuSeconds = value) },
    // Traffic in Mbit/s per request/s, i.e. megabits per request.
    { key: "bytes", measured: (sample: HostSample) => sample.txMbps, defaultOf: (role: Role) => mbps(1, defaults[role].bytes), set: (role: Role, value: number) => (costs[role].bytes = (value * 1e6) / 8) },
  ] as const;
  const hosts = new Set(usable.map((sample) => sample.host)).size;
  for (const measure of measures) {
    const identified = identifiable(usable, measure.measured, measure.defaultOf);
    // Each host's background and each role's cost are unknowns: fewer than twice as many samples
    // as unknowns fit noise (a PoP's first period, its three hosts, four roles) — the defaults stand.
    if (identified.length === 0 || usable.length < 2 * (hosts + identified.length)) {
      continue;
    }
    const fitted = fitCosts(usable, identified, measure.measured, measure.defaultOf, solver);
    for (const role of identified) {
      const fallback = measure.defaultOf(role);
      const value = Math.min(fallback * CALIBRATION_BOUND, Math.max(fallback / CALIBRATION_BOUND, fitted.get(role)!));
      measure.set(role, value);
      source[role][measure.key] = value === fitted.get(role) ? "measured" : "bounded";
    }
  }
  return { costs, source, samples: usable.length };
}

/**
 * The roles whose cost the samples can tell for one measure: enough of their requests seen, and a
 * part of the measure (at their default cost) that noise does not drown. Small files' bytes beside
 * large files' are a rounding error of the traffic; fitted, they would be noise.
 */
function identifiable(samples: readonly HostSample[], measured: (sample: HostSample) => number, defaultOf: (role: Role) => number): Role[] {
  const total = samples.reduce((sum, sample) => sum + measured(sample), 0);
  return ROLES.filter((role) => {
    const rate = samples.reduce((sum, sample) => sum + sample.served[role] / sample.seconds, 0);
    return rate >= MIN_RPS_TO_CALIBRATE && rate * defaultOf(role) >= MIN_SHARE_TO_CALIBRATE * total;
  });
}

/**
 * The least-absolute-error fit of `measured(sample) = background(host) + Σ cost_r × rate_r` over the
 * identified roles; the others are taken at their defaults (their use moves into the residual).
 * Variables are scaled by the defaults so the solver sees numbers near 1.
 */
function fitCosts(
  samples: readonly HostSample[],
  identified: readonly Role[],
  measured: (sample: HostSample) => number,
  defaultOf: (role: Role) => number,
  solver: MilpSolver,
): Map<Role, number> {
  const hosts = [...new Set(samples.map((sample) => sample.host))];
  const rows: string[] = [];
  const residuals: string[] = [];
  samples.forEach((sample, i) => {
    const rates = ratesOf(sample.served, sample.seconds);
    const known = ROLES.filter((role) => !identified.includes(role)).reduce((sum, role) => sum + rates[role] * defaultOf(role), 0);
    let row = ` fit${i}: b${hosts.indexOf(sample.host)}`;
    for (const role of identified) {
      const coefficient = rates[role] * defaultOf(role);
      if (coefficient > 0) {
        row += ` + ${coefficient} k_${role}`;
      }
    }
    row += ` + u${i} - v${i} = ${measured(sample) - known}`;
    rows.push(row);
    residuals.push(`u${i}`, `v${i}`);
  });
  const model = ["Minimize", ` error: ${residuals.join(" + ")}`, "Subject To", ...rows, "Bounds", ...hosts.map((_, h) => ` b${h} >= 0`), "End"].join("\n");
  const solved = solver.solve(model, { timeLimitSeconds: FIT_TIME_LIMIT_SECONDS });
  if (solved.status !== "optimal" || solved.values === undefined) {
    throw new SolverError(`HiGHS did not fit the request costs: ${solved.detail}`);
  }
  const values = solved.values;
  // Every identified role served requests in some sample, so its column is in the model.
  return new Map(identified.map((role) => [role, (values[`k_${role}`] ?? 0) * defaultOf(role)] as const));
}
