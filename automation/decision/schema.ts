import { z } from "zod";
import { expectedParticipants, lastN } from "../../components/conference/spec.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../components/quantity.ts";
import { kubernetesQuantity, latitude, longitude, parseOrThrow } from "../../components/validation.ts";
import type { MeasuredRtt } from "./latency.ts";
import type { CandidateCluster, PlacementRequest } from "./placement.ts";

/**
 * The decision maker's input schemas: where requests and clusters enter from outside (the service,
 * the operator command), they are parsed here once; placeConference itself trusts its types and
 * stays fast.
 */

const countryCode = z.string().regex(/^[A-Za-z]{2}$/, {
  error: (issue) => `${JSON.stringify(issue.input)} is not an ISO 3166-1 alpha-2 country code; use e.g. "SI"`,
});

const participant = z.strictObject({ lat: latitude, lon: longitude, country: countryCode.optional() }, { error: "must be { lat, lon }" });

const percentile = z
  .number({ error: "must be a number above 0 and at most 100" })
  .refine((value) => value > 0 && value <= 100, { error: (issue) => `${String(issue.input)} is out of range; use a percentile above 0 and at most 100` });

const objective = z.union([z.literal("mean"), z.literal("worstPair"), z.strictObject({ percentile })], {
  error: (issue) => `${JSON.stringify(issue.input)} is not an objective; use "mean", "worstPair" or { percentile: 1-100 }`,
});

const placementRequest = z.strictObject(
  {
    participants: z
      .array(participant, { error: "must be a list of { lat, lon }" })
      .min(1, { error: "is empty; give at least one participant's location to place the conference near" }),
    expectedParticipants,
    lastN,
    simulcast: z.boolean({ error: "is required; true or false" }),
    objective: objective.optional(),
  },
  { error: "must be { participants, expectedParticipants, lastN, simulcast, objective? }" },
);

const positive = z.number({ error: "must be a number" }).positive({ error: "must be positive" });

// Not strict: the testbed's clusters output carries more (kubeconfigs among it), which is dropped here.
const candidateClusters = z.record(
  z.string(),
  z.object({
    location: z.object({ lat: latitude, lon: longitude }, { error: "is required; give { lat, lon }" }),
    capacity: z.object({ nodes: positive, vcpuPerNode: positive, memoryGiBPerNode: positive }, { error: "is required; give { nodes, vcpuPerNode, memoryGiBPerNode }" }),
    free: z.object(
      { cpu: kubernetesQuantity(parseCpuMillicores, '"1500m"'), memory: kubernetesQuantity(parseMemoryBytes, '"4Gi"') },
      { error: 'is required; give what is free now as { cpu, memory }, e.g. { cpu: "1500m", memory: "4Gi" }' },
    ),
  }),
  { error: "must be a map from cluster name to { location, capacity, free }" },
).refine((clusters) => Object.keys(clusters).length > 0, { error: "is empty; give at least one cluster" });

const measured = z.record(
  z.string(),
  z.array(
    z.union(
      [
        z.strictObject({ country: countryCode, rttMs: positive }),
        z.strictObject({ area: z.strictObject({ lat: latitude, lon: longitude, radiusKm: positive }), rttMs: positive }),
      ],
      { error: "must be { country, rttMs } or { area: { lat, lon, radiusKm }, rttMs }" },
    ),
  ),
);

export function parsePlacementRequest(value: unknown, keyPrefix = "request"): PlacementRequest {
  return parseOrThrow(placementRequest, value, keyPrefix);
}

export function parseCandidateClusters(value: unknown, keyPrefix = "clusters"): Record<string, CandidateCluster> {
  return parseOrThrow(candidateClusters, value, keyPrefix);
}

export function parseMeasuredRtts(value: unknown, keyPrefix = "measured"): Record<string, MeasuredRtt[]> {
  return parseOrThrow(measured, value, keyPrefix);
}
