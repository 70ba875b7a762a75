import { InvalidArgumentsError } from "../errors.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../quantity.ts";
import { arcKm, writeUnitVector } from "./geometry.ts";
import { DEFAULT_LATENCY_MODEL, type LatencyModel, type PreparedMeasurements, measuredRtt, modelRttMs, prepareMeasurements } from "./latency.ts";
import type { CandidateCluster, MeasuredRtt, PlacementRequest } from "./schema.ts";
import { type ConferenceSize, PAPER_PROFILE, type SizingProfile, sizeConference } from "./sizing.ts";

export interface PlacementOptions {
  /** Defaults to DEFAULT_LATENCY_MODEL. */
  latency?: Partial<LatencyModel>;
  /** Measured RTTs per cluster name; where one covers a participant it replaces the model. Defaults to none. */
  measured?: Readonly<Record<string, readonly MeasuredRtt[]>>;
  /** Defaults to PAPER_PROFILE. */
  profile?: SizingProfile;
}

export interface RankedCluster {
  cluster: string;
  /** Has room for the conference. */
  feasible: boolean;
  /** The objective's value, ms. */
  objectiveMs: number;
  meanRttMs: number;
  worstPairRttMs: number;
  /** With a percentile objective: that percentile of participant RTTs, ms. */
  percentileRttMs?: number;
  /** Participants whose RTT came from a measurement rather than the model. */
  measuredParticipants: number;
  /** Why the cluster cannot take the conference. */
  reason?: string;
}

export interface Placement {
  /** The best feasible cluster, or null when none has room. */
  cluster: string | null;
  objective: string;
  size: ConferenceSize;
  /** Every cluster: feasible ones first, best first. */
  ranking: RankedCluster[];
}

const GIBIBYTE = 1024 ** 3;
const NANOSECONDS_PER_MS = 1e6;

/**
 * Places a conference on the cluster that minimises the objective over its participants among
 * the clusters with room for its size. Exact: every cluster is evaluated. Ties go to the lower
 * mean RTT, then to the cluster name. Expects validated input (parsePlacement*).
 */
export function placeConference(request: PlacementRequest, clusters: Readonly<Record<string, CandidateCluster>>, options: PlacementOptions = {}): Placement {
  const count = request.participants.length;
  if (count === 0) {
    throw new InvalidArgumentsError(["placeConference: there are no participants to place the conference near"]);
  }
  const model: LatencyModel = { ...DEFAULT_LATENCY_MODEL, ...options.latency };
  const size = sizeConference(request, options.profile ?? PAPER_PROFILE);
  const objective = request.objective ?? "mean";
  const percentile = typeof objective === "object" ? objective.percentile : undefined;

  const points = new Float64Array(3 * count);
  for (let i = 0; i < count; i++) {
    const participant = request.participants[i]!;
    writeUnitVector(participant.lat, participant.lon, points, 3 * i);
  }
  // Countries matter only to measured RTTs.
  const countries = options.measured === undefined ? [] : request.participants.map((participant) => participant.country?.toUpperCase());

  const sites = preparedClusters(clusters);
  const rtts = new Float64Array(count);
  const ranking: RankedCluster[] = [];
  for (let c = 0; c < sites.names.length; c++) {
    const name = sites.names[c]!;
    const measurements = preparedFor(options.measured?.[name]);
    let measuredParticipants = 0;
    let sumNanoseconds = 0;
    let highest = -Infinity;
    let second = -Infinity;
    for (let i = 0; i < count; i++) {
      const offset = 3 * i;
      const measured = measurements === undefined ? undefined : measuredRtt(measurements, points, offset, countries[i]);
      let rtt: number;
      if (measured === undefined) {
        rtt = modelRttMs(model, arcKm(points, offset, sites.vectors, 3 * c));
      } else {
        rtt = measured;
        measuredParticipants++;
      }
      rtts[i] = rtt;
      // Summed as whole nanoseconds: integer sums do not depend on the participants' order, so
      // neither does any figure or the ranking, to the last bit.
      sumNanoseconds += Math.round(rtt * NANOSECONDS_PER_MS);
      if (rtt > highest) {
        second = highest;
        highest = rtt;
      } else if (rtt > second) {
        second = rtt;
      }
    }
    const meanRttMs = sumNanoseconds / NANOSECONDS_PER_MS / count;
    // One participant pairs with themselves: their RTT there and back again.
    const worstPairRttMs = highest + (count > 1 ? second : highest);
    const percentileRttMs = percentile === undefined ? undefined : nearestRank(rtts, percentile);
    const objectiveMs = objective === "mean" ? meanRttMs : objective === "worstPair" ? worstPairRttMs : (percentileRttMs ?? 0);
    const reason = whyNot(sites.clusters[c]!, sites.free[c]!, size);
    const entry: RankedCluster = { cluster: name, feasible: reason === undefined, objectiveMs, meanRttMs, worstPairRttMs, measuredParticipants };
    if (percentileRttMs !== undefined) {
      entry.percentileRttMs = percentileRttMs;
    }
    if (reason !== undefined) {
      entry.reason = reason;
    }
    ranking.push(entry);
  }

  ranking.sort(
    (a, b) =>
      Number(b.feasible) - Number(a.feasible) ||
      a.objectiveMs - b.objectiveMs ||
      a.meanRttMs - b.meanRttMs ||
      compareText(a.cluster, b.cluster),
  );
  const best = ranking[0];
  return {
    cluster: best?.feasible === true ? best.cluster : null,
    objective: typeof objective === "object" ? `p${objective.percentile}` : objective,
    size,
    ranking,
  };
}

/** Why `cluster` cannot take a conference of `size`, or undefined if it can. */
function whyNot(cluster: CandidateCluster, free: ParsedFree, size: ConferenceSize): string | undefined {
  if (free.millicores === undefined || free.bytes === undefined) {
    return `its free capacity ${JSON.stringify(cluster.free)} is not in Kubernetes quantities`;
  }
  const reasons: string[] = [];
  if (size.millicores > cluster.capacity.vcpuPerNode * 1000) {
    reasons.push(`needs ${size.cpu} CPU in one pod but a node has ${cluster.capacity.vcpuPerNode} vCPU`);
  } else if (size.millicores > free.millicores) {
    reasons.push(`needs ${size.cpu} CPU but ${cluster.free.cpu} is free`);
  }
  if (size.bytes > cluster.capacity.memoryGiBPerNode * GIBIBYTE) {
    reasons.push(`needs ${size.memory} memory in one pod but a node has ${cluster.capacity.memoryGiBPerNode} GiB`);
  } else if (size.bytes > free.bytes) {
    reasons.push(`needs ${size.memory} memory but ${cluster.free.memory} is free`);
  }
  return reasons.length === 0 ? undefined : reasons.join("; ");
}

/** The p-th percentile by nearest rank (sorts `values` in place). */
function nearestRank(values: Float64Array, p: number): number {
  values.sort();
  return values[Math.max(1, Math.ceil((p / 100) * values.length)) - 1]!;
}

/** Code-unit order: locale-independent, so every machine ranks alike. */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface ParsedFree {
  millicores: number | undefined;
  bytes: number | undefined;
}

/** A cluster map made ready for placement: names, unit vectors and parsed free capacity. */
interface PreparedClusters {
  names: string[];
  clusters: CandidateCluster[];
  vectors: Float64Array;
  free: ParsedFree[];
}

// The service places many conferences against one view of its clusters; preparing that view is
// pure, so it is memoised per clusters object.
const clustersCache = new WeakMap<Readonly<Record<string, CandidateCluster>>, PreparedClusters>();

function preparedClusters(clusters: Readonly<Record<string, CandidateCluster>>): PreparedClusters {
  let prepared = clustersCache.get(clusters);
  if (prepared === undefined) {
    const names = Object.keys(clusters);
    const list = names.map((name) => clusters[name]!);
    const vectors = new Float64Array(3 * names.length);
    list.forEach((cluster, index) => writeUnitVector(cluster.location.lat, cluster.location.lon, vectors, 3 * index));
    const free = list.map((cluster) => ({ millicores: parseCpuMillicores(cluster.free.cpu), bytes: parseMemoryBytes(cluster.free.memory) }));
    prepared = { names, clusters: list, vectors, free };
    clustersCache.set(clusters, prepared);
  }
  return prepared;
}

const preparedCache = new WeakMap<readonly MeasuredRtt[], PreparedMeasurements>();

function preparedFor(measured: readonly MeasuredRtt[] | undefined): PreparedMeasurements | undefined {
  if (measured === undefined || measured.length === 0) {
    return undefined;
  }
  let prepared = preparedCache.get(measured);
  if (prepared === undefined) {
    prepared = prepareMeasurements(measured);
    preparedCache.set(measured, prepared);
  }
  return prepared;
}
