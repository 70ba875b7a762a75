import { z } from "zod";
import { expectedParticipants, lastN } from "../contracts/conference.ts";
import { clusterCapacity, clusterLocation } from "../contracts/testbed.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../quantity.ts";
import { expected, kubernetesQuantity, latitude, longitude, parseOrThrow } from "../validation.ts";

/**
 * The decision maker's input schemas, and its input types derived from them: where requests and
 * clusters enter from outside (the service, the operator command), they are parsed here once;
 * placeConference itself trusts its types and stays fast.
 */

const countryCode = z.string({ error: expected("a string", 'give an ISO 3166-1 alpha-2 country code, e.g. "SI"') }).regex(/^[A-Za-z]{2}$/, {
  error: (issue) => `${JSON.stringify(issue.input)} is not an ISO 3166-1 alpha-2 country code; use e.g. "SI"`,
});

/** A participant's position; `country` (ISO 3166-1 alpha-2) when known, for measured RTTs by country. */
const participant = z.strictObject({ lat: latitude, lon: longitude, country: countryCode.optional() }, { error: expected("{ lat, lon }") });

const percentile = z
  .number({ error: expected("a number", "give a percentile above 0 and at most 100") })
  .refine((value) => value > 0 && value <= 100, { error: (issue) => `${String(issue.input)} is out of range; use a percentile above 0 and at most 100` });

/**
 * What placement minimises over participants: the mean participant–bridge RTT, the worst RTT
 * between two participants through the bridge (the sum of their two RTTs), or a percentile of the
 * participant–bridge RTTs.
 */
const objective = z.union([z.literal("mean"), z.literal("worstPair"), z.strictObject({ percentile })], {
  error: (issue) => `${JSON.stringify(issue.input)} is not an objective; use "mean", "worstPair" or { percentile: 1-100 }`,
});

const placementRequest = z.strictObject(
  {
    participants: z
      .array(participant, { error: expected("a list of { lat, lon }") })
      .min(1, { error: "is empty; give at least one participant's location to place the conference near" }),
    expectedParticipants,
    lastN,
    simulcast: z.boolean({ error: expected("a boolean", "true or false") }),
    /** Defaults to "mean". */
    objective: objective.optional(),
  },
  { error: expected("{ participants, expectedParticipants, lastN, simulcast, objective? }") },
);

const positive = (what: string) => z.number({ error: expected("a number", `give the ${what}`) }).positive({ error: (issue) => `${String(issue.input)} is not positive; give the ${what}` });

/**
 * A cluster as the testbed's `clusters` output describes it (its location and capacity; the rest,
 * kubeconfigs among it, is dropped here), with what is free on it now.
 */
const candidateCluster = z.object(
  {
    location: z.object(clusterLocation.pick({ lat: true, lon: true }).shape, { error: expected("a map", "give { lat, lon }") }),
    capacity: clusterCapacity,
    /** Kubernetes quantities. */
    free: z.object(
      { cpu: kubernetesQuantity(parseCpuMillicores, '"1500m"'), memory: kubernetesQuantity(parseMemoryBytes, '"4Gi"') },
      { error: expected("a map", 'give what is free now as { cpu, memory }, e.g. { cpu: "1500m", memory: "4Gi" }') },
    ),
  },
  { error: expected("a map", "give { location, capacity, free }") },
);

const candidateClusters = z
  .record(z.string(), candidateCluster, { error: expected("a map from cluster name to { location, capacity, free }") })
  .refine((clusters) => Object.keys(clusters).length > 0, { error: "is empty; give at least one cluster" });

/**
 * A measured round trip from a cluster to participants in a country (ISO 3166-1 alpha-2, known
 * when a participant was located by IP or gives it) or in an area (a circle). The smallest area
 * containing the participant wins, then the country, then the model.
 */
const measuredRtt = z.union(
  [
    z.strictObject({ country: countryCode, rttMs: positive("round trip in ms") }),
    z.strictObject({ area: z.strictObject({ lat: latitude, lon: longitude, radiusKm: positive("radius in km") }), rttMs: positive("round trip in ms") }),
  ],
  { error: "must be { country, rttMs } or { area: { lat, lon, radiusKm }, rttMs }" },
);
const measured = z.record(z.string(), z.array(measuredRtt, { error: expected("a list of measured round trips") }), {
  error: expected("a map from cluster name to measured round trips"),
});

export type Participant = z.output<typeof participant>;
export type Objective = z.output<typeof objective>;
export type PlacementRequest = z.output<typeof placementRequest>;
/** What sizing needs of a request. */
export type SizingRequest = Pick<PlacementRequest, "expectedParticipants" | "lastN" | "simulcast">;
export type CandidateCluster = z.output<typeof candidateCluster>;
export type MeasuredRtt = z.output<typeof measuredRtt>;

export function parsePlacementRequest(value: unknown, keyPrefix = "request"): PlacementRequest {
  return parseOrThrow(placementRequest, value, keyPrefix);
}

export function parseCandidateClusters(value: unknown, keyPrefix = "clusters"): Record<string, CandidateCluster> {
  return parseOrThrow(candidateClusters, value, keyPrefix);
}

export function parseMeasuredRtts(value: unknown, keyPrefix = "measured"): Record<string, MeasuredRtt[]> {
  return parseOrThrow(measured, value, keyPrefix);
}
