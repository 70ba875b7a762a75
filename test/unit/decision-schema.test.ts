import { describe, expect, it } from "vitest";
import { parseCandidateClusters, parseMeasuredRtts, parsePlacementRequest } from "../../domain/decision/index.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

const valid = { participants: [{ lat: 46.05, lon: 14.5 }], expectedParticipants: 5, lastN: 5, simulcast: true };
const cluster = { location: { lat: 46, lon: 14 }, capacity: { nodes: 2, vcpuPerNode: 4, memoryGiBPerNode: 16 }, free: { cpu: "8", memory: "32Gi" } };

describe("placement request validation", () => {
  it.each([
    ["no participants", { ...valid, participants: [] }, "request.participants is empty; give at least one participant's location to place the conference near"],
    ["a latitude out of range", { ...valid, participants: [{ lat: 95, lon: 0 }] }, "request.participants[0].lat 95 is out of range; use decimal degrees between -90 and 90"],
    ["a longitude missing", { ...valid, participants: [{ lat: 5 }] }, "request.participants[0].lon is required; give the longitude (degrees east) in decimal degrees"],
    ["a bad country code", { ...valid, participants: [{ lat: 5, lon: 5, country: "SVN" }] }, 'request.participants[0].country "SVN" is not an ISO 3166-1 alpha-2 country code; use e.g. "SI"'],
    ["zero expected participants", { ...valid, expectedParticipants: 0 }, "request.expectedParticipants 0 is too few; a conference needs at least 1 participant"],
    ["lastN below -1", { ...valid, lastN: -3 }, "request.lastN -3 is below -1; use -1 for unlimited or a number of video streams"],
    ["an unknown objective", { ...valid, objective: "median" }, 'request.objective "median" is not an objective; use "mean", "worstPair" or { percentile: 1-100 }'],
    ["a percentile over 100", { ...valid, objective: { percentile: 120 } }, "request.objective.percentile 120 is out of range; use a percentile above 0 and at most 100"],
    ["a missing simulcast", { ...valid, simulcast: undefined }, "request.simulcast is required; true or false"],
    ["a simulcast as text", { ...valid, simulcast: "yes" }, "request.simulcast must be a boolean; true or false"],
    ["a latitude as text", { ...valid, participants: [{ lat: "46.05", lon: 14.5 }] }, "request.participants[0].lat must be a number; give the latitude (degrees north) in decimal degrees"],
    ["participants as one location", { ...valid, participants: { lat: 46, lon: 14 } }, "request.participants must be a list of { lat, lon }"],
  ])("rejects %s", (_case, request, message) => {
    expect(invalidArgumentsMessage(() => parsePlacementRequest(request))).toBe(message);
  });

  it("accepts a valid request", () => {
    expect(parsePlacementRequest({ ...valid, objective: { percentile: 95 } })).toEqual({ ...valid, objective: { percentile: 95 } });
  });
});

describe("candidate cluster validation", () => {
  it.each([
    ["no clusters", {}, "clusters is empty; give at least one cluster"],
    ["free CPU that is no quantity", { a: { ...cluster, free: { cpu: "lots", memory: "1Gi" } } }, 'clusters.a.free.cpu "lots" is not a Kubernetes quantity; use e.g. "1500m"'],
    ["no free capacity", { a: { ...cluster, free: undefined } }, 'clusters.a.free is required; give what is free now as { cpu, memory }, e.g. { cpu: "1500m", memory: "4Gi" }'],
    ["zero vCPU per node", { a: { ...cluster, capacity: { ...cluster.capacity, vcpuPerNode: 0 } } }, "clusters.a.capacity.vcpuPerNode must be positive"],
    ["a cluster that is not a map", { a: "gcp-us-west1" }, "clusters.a must be a map; give { location, capacity, free }"],
    ["free CPU as a number", { a: { ...cluster, free: { cpu: 8, memory: "1Gi" } } }, 'clusters.a.free.cpu must be a string; give a Kubernetes quantity, e.g. "1500m"'],
  ])("rejects %s", (_case, clusters, message) => {
    expect(invalidArgumentsMessage(() => parseCandidateClusters(clusters))).toBe(message);
  });

  it("drops what placement does not need, such as kubeconfigs", () => {
    expect(parseCandidateClusters({ a: { ...cluster, kubeconfig: "secret", exposure: "nodePort" } })).toEqual({ a: cluster });
  });
});

describe("measured RTT validation", () => {
  it("rejects an entry that is neither by country nor by area", () => {
    expect(invalidArgumentsMessage(() => parseMeasuredRtts({ a: [{ rttMs: 5 }] }))).toBe("measured.a[0] must be { country, rttMs } or { area: { lat, lon, radiusKm }, rttMs }");
  });
});
