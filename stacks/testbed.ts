import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import type { SiteInput } from "../components/testbed/sites.ts";
import { Testbed, parseTestbedArgs } from "../components/testbed/testbed.ts";
import { parseOrThrow } from "../components/validation.ts";

/**
 * The seven clusters of the paper's evaluation (seed 000, "Evaluation"). Coordinates are of the
 * named city. The paper gives the existing clusters' machines (flexiOps: 4 vCPUs, Arnes: 1 vCPU;
 * 3.75 or 4 GB) but not how many nodes they had; two is the least it ran on (conference + load
 * generator). GKE zones are ones that exist in each region
 * (https://cloud.google.com/compute/docs/regions-zones).
 */
export const DEFAULT_SITES: SiteInput[] = [
  {
    name: "flexiops-edinburgh",
    provider: "kubeconfig",
    location: { city: "Edinburgh", country: "GB", lat: 55.9533, lon: -3.1883 },
    nodes: 2,
    vcpuPerNode: 4,
    memoryGiBPerNode: 4,
  },
  {
    name: "arnes-ljubljana",
    provider: "kubeconfig",
    location: { city: "Ljubljana", country: "SI", lat: 46.0569, lon: 14.5058 },
    nodes: 2,
    vcpuPerNode: 1,
    memoryGiBPerNode: 4,
  },
  {
    name: "gcp-us-west1",
    provider: "gke",
    location: { city: "The Dalles", country: "US", lat: 45.5946, lon: -121.1787 },
    region: "us-west1",
    zone: "us-west1-b",
  },
  {
    name: "gcp-europe-west1",
    provider: "gke",
    location: { city: "St. Ghislain", country: "BE", lat: 50.4542, lon: 3.8183 },
    region: "europe-west1",
    zone: "europe-west1-b",
  },
  {
    name: "gcp-asia-east1",
    provider: "gke",
    location: { city: "Changhua County", country: "TW", lat: 24.0518, lon: 120.5161 },
    region: "asia-east1",
    zone: "asia-east1-b",
  },
  {
    name: "gcp-asia-southeast1",
    provider: "gke",
    location: { city: "Jurong West", country: "SG", lat: 1.3404, lon: 103.709 },
    region: "asia-southeast1",
    zone: "asia-southeast1-b",
  },
  {
    name: "gcp-asia-northeast1",
    provider: "gke",
    location: { city: "Tokyo", country: "JP", lat: 35.6762, lon: 139.6503 },
    region: "asia-northeast1",
    zone: "asia-northeast1-b",
  },
];

const kubeconfigMap = z.record(z.string(), z.string({ error: "must be the kubeconfig file's contents as a string" }), {
  error: "must be a map from site name to kubeconfig",
});

/** The testbed stack: config `switch-vaas:sites` (default: the paper's seven) and `switch-vaas:kubeconfigs`. */
export default async function testbed(): Promise<{ clusters: Testbed["clusters"] }> {
  const config = new pulumi.Config("switch-vaas");
  const sites = config.getObject<unknown>("sites") ?? DEFAULT_SITES;
  const kubeconfigs = Object.fromEntries(
    Object.entries(parseOrThrow(kubeconfigMap, config.getObject<unknown>("kubeconfigs") ?? {}, "switch-vaas:kubeconfigs")).map(
      ([site, kubeconfig]) => [site, pulumi.secret(kubeconfig)],
    ),
  );

  // Validated here as well as in the component so that messages name the config keys.
  parseTestbedArgs({ sites: sites as SiteInput[], kubeconfigs }, "switch-vaas:");
  const bed = new Testbed("testbed", { sites: sites as SiteInput[], kubeconfigs });
  return { clusters: bed.clusters };
}
