import { parseCpuMillicores, parseMemoryBytes } from "../../components/quantity.ts";
import { arcKm, writeUnitVector } from "./geometry.ts";
import { DEFAULT_LATENCY_MODEL, type LatencyModel, type MeasuredRtt, type PreparedMeasurements, measuredRtt, modelRttMs, prepareMeasurements } from "./latency.ts";
import { type ConferenceSize, PAPER_PROFILE, type SizingProfile, type SizingRequest, sizeConference } from "./sizing.ts";

/** A participant's position; `country` (ISO 3166-1 alpha-2) when known, for measured RTTs by country. */
export interface Participant {
  lat: number;
  lon: number;
  country?: string;
}

/**
 * What placement minimises over participants: the mean participant–bridge RTT, the worst RTT
 * between two participants through the bridge (the sum of their two RTTs), or a percentile of the
 * participant–bridge RTTs.
 */
export type Objective = "mean" | "worstPair" | { percentile: number };

export interface PlacementRequest extends SizingRequest {
  participants: Participant[];
  /** Defaults to "mean". */
  objective?: Objective;
}

/** A cluster as the testbed's `clusters` output describes it, with what is free on it now. */
export interface CandidateCluster {
  location: { lat: number; lon: number };
  capacity: { nodes: number; vcpuPerNode: number; memoryGiBPerNode: number };
  /** Kubernetes quantities. */
  free: { cpu: string; memory: string };
}

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

/**
 * Places a conference on the cluster that minimises the objective over its participants among
 * the clusters with room for its size. Exact: every cluster is evaluated. Ties go to the lower
 * mean RTT, then to the cluster name; participants are taken in a canonical order, so their order
 * in the request cannot change a figure in the last bit. Expects validated input (parsePlacement*).
 */
export function placeConference(request: PlacementRequest, clusters: Readonly<Record<string, CandidateCluster>>, options: PlacementOptions = {}): Placement {
  const count = request.participants.length;
  if (count === 0) {
    throw new Error("placeConference: there are no participants to place the conference near");
  }
  const model: LatencyModel = { ...DEFAULT_LATENCY_MODEL, ...options.latency };
  const size = sizeConference(request, options.profile ?? PAPER_PROFILE);
  const objective = request.objective ?? "mean";
  const percentile = typeof objective === "object" ? objective.percentile : undefined;

  const ordered = canonicalOrder(request.participants);
  const points = new Float64Array(3 * count);
  const countries: (string | undefined)[] = new Array<string | undefined>(count);
  ordered.forEach((participant, index) => {
    writeUnitVector(participant.lat, participant.lon, points, 3 * index);
    countries[index] = participant.country?.toUpperCase();
  });

  const rtts = new Float64Array(count);
  const site = new Float64Array(3);
  const ranking: RankedCluster[] = [];
  for (const [name, cluster] of Object.entries(clusters)) {
    writeUnitVector(cluster.location.lat, cluster.location.lon, site, 0);
    const measurements = preparedFor(options.measured?.[name]);
    let sum = 0;
    let highest = -Infinity;
    let second = -Infinity;
    let measuredParticipants = 0;
    for (let i = 0; i < count; i++) {
      let rtt = measurements === undefined ? undefined : measuredRtt(measurements, points, 3 * i, countries[i]);
      if (rtt === undefined) {
        rtt = modelRttMs(model, arcKm(points, 3 * i, site, 0));
      } else {
        measuredParticipants++;
      }
      rtts[i] = rtt;
      sum += rtt;
      if (rtt > highest) {
        second = highest;
        highest = rtt;
      } else if (rtt > second) {
        second = rtt;
      }
    }
    const meanRttMs = sum / count;
    // One participant pairs with themselves: their RTT there and back again.
    const worstPairRttMs = highest + (count > 1 ? second : highest);
    const percentileRttMs = percentile === undefined ? undefined : nearestRank(rtts, percentile);
    const objectiveMs = objective === "mean" ? meanRttMs : objective === "worstPair" ? worstPairRttMs : (percentileRttMs ?? 0);
    const reason = whyNot(cluster, size);
    ranking.push({
      cluster: name,
      feasible: reason === undefined,
      objectiveMs,
      meanRttMs,
      worstPairRttMs,
      ...(percentileRttMs === undefined ? {} : { percentileRttMs }),
      measuredParticipants,
      ...(reason === undefined ? {} : { reason }),
    });
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
function whyNot(cluster: CandidateCluster, size: ConferenceSize): string | undefined {
  const reasons: string[] = [];
  const freeCpu = quantity(cluster.free.cpu, parseCpuMillicores);
  const freeMemory = quantity(cluster.free.memory, parseMemoryBytes);
  if (freeCpu === undefined || freeMemory === undefined) {
    return `its free capacity ${JSON.stringify(cluster.free)} is not in Kubernetes quantities`;
  }
  if (size.millicores > cluster.capacity.vcpuPerNode * 1000) {
    reasons.push(`needs ${size.cpu} CPU in one pod but a node has ${cluster.capacity.vcpuPerNode} vCPU`);
  } else if (size.millicores > freeCpu) {
    reasons.push(`needs ${size.cpu} CPU but ${cluster.free.cpu} is free`);
  }
  if (size.bytes > cluster.capacity.memoryGiBPerNode * GIBIBYTE) {
    reasons.push(`needs ${size.memory} memory in one pod but a node has ${cluster.capacity.memoryGiBPerNode} GiB`);
  } else if (size.bytes > freeMemory) {
    reasons.push(`needs ${size.memory} memory but ${cluster.free.memory} is free`);
  }
  return reasons.length === 0 ? undefined : reasons.join("; ");
}

/** Code-unit order: locale-independent, so every machine ranks alike. */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The p-th percentile by nearest rank (sorts `values` in place). */
function nearestRank(values: Float64Array, p: number): number {
  values.sort();
  const rank = Math.max(1, Math.ceil((p / 100) * values.length));
  return values[rank - 1]!;
}

function canonicalOrder(participants: readonly Participant[]): Participant[] {
  return [...participants].sort((a, b) => a.lat - b.lat || a.lon - b.lon || compareText(a.country ?? "", b.country ?? ""));
}

// Free capacities repeat across placements (the same few clusters), and parsing a quantity is the
// costliest step left in a small placement; pure, so memoised.
const quantityCache = new Map<string, number | undefined>();
const QUANTITY_CACHE_LIMIT = 10_000;

function quantity(text: string, parse: (text: string) => number | undefined): number | undefined {
  const key = `${parse === parseCpuMillicores ? "cpu" : "mem"}:${text}`;
  if (!quantityCache.has(key)) {
    if (quantityCache.size >= QUANTITY_CACHE_LIMIT) {
      quantityCache.clear();
    }
    quantityCache.set(key, parse(text));
  }
  return quantityCache.get(key);
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
