import type * as pulumi from "@pulumi/pulumi";
import { type OfflineResult, RecordingMocks } from "../../automation/engine/offline.ts";
import { kubeconfigWithoutCredentials } from "../../components/testbed/kubeconfig.ts";
import type { ConferenceOutputs } from "../../domain/contracts/conference.ts";
import { runStack } from "./pulumi.ts";

/** What a testbed stack's `clusters` output holds, for the clusters the conference tests use. */
export const TESTBED_CLUSTERS = {
  "gcp-europe-west1": {
    provider: "gke",
    region: "europe-west1",
    zone: "europe-west1-b",
    location: { city: "St. Ghislain", country: "BE", lat: 50.4542, lon: 3.8183 },
    kubeconfig: kubeconfigWithoutCredentials("https://35.0.0.1", "gke-europe"),
    exposure: "loadBalancer",
    capacity: { nodes: 2, vcpuPerNode: 1, memoryGiBPerNode: 3.75 },
  },
  "arnes-ljubljana": {
    provider: "kubeconfig",
    location: { city: "Ljubljana", country: "SI", lat: 46.0569, lon: 14.5058 },
    kubeconfig: kubeconfigWithoutCredentials("https://193.2.1.10:6443", "arnes"),
    exposure: "nodePort",
    publicAddress: "193.2.1.10",
    capacity: { nodes: 2, vcpuPerNode: 1, memoryGiBPerNode: 4 },
  },
  "flexiops-edinburgh": {
    provider: "kubeconfig",
    location: { city: "Edinburgh", country: "GB", lat: 55.9533, lon: -3.1883 },
    kubeconfig: kubeconfigWithoutCredentials("https://k8s.flexiops.example:6443", "flexiops"),
    exposure: "nodePort",
    publicAddress: "k8s.flexiops.example",
    capacity: { nodes: 2, vcpuPerNode: 4, memoryGiBPerNode: 4 },
  },
} as const;

export const LOAD_BALANCER_IP = "203.0.113.7";

/** Hands out node ports the way one cluster's API server does: each one once. */
export interface NodePortAllocator {
  allocate(): number;
}

export function nodePortAllocator(): NodePortAllocator {
  let next = 30000;
  return { allocate: () => next++ };
}

/**
 * Mocks answering what the engine and the cluster would: the testbed's outputs (a secret, as the
 * nested kubeconfigs make them), a load balancer's address and node ports
 * from Kubernetes' allocator (distinct across every Service these mocks see, as in one cluster),
 * or none yet.
 */
export function conferenceMocks(
  cluster: NodePortAllocator | "not yet" = nodePortAllocator(),
  testbed: { clusters?: unknown } = { clusters: TESTBED_CLUSTERS },
): RecordingMocks {
  return new RecordingMocks((resource: pulumi.runtime.MockResourceArgs) => {
    switch (resource.type) {
      case "pulumi:pulumi:StackReference":
        return {
          outputs:
            testbed.clusters === undefined
              ? {}
              : { clusters: { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: testbed.clusters } },
        };
      case "kubernetes:core/v1:Service": {
        const inputs = resource.inputs as { spec: { type: string; ports: Record<string, unknown>[] } };
        // "not yet": a preview of a new conference, before the API server allocated anything.
        const ports = inputs.spec.ports.map((port) => (cluster === "not yet" ? port : { ...port, nodePort: cluster.allocate() }));
        const loadBalancer = inputs.spec.type === "LoadBalancer" ? { ingress: [{ ip: LOAD_BALANCER_IP }] } : {};
        return { spec: { ...inputs.spec, ports }, status: { loadBalancer } };
      }
      default:
        return {};
    }
  });
}

/** What the conference program returns: the contract's outputs, before resolution. */
export type ConferenceStackOutputs = { [K in keyof ConferenceOutputs]: pulumi.Output<ConferenceOutputs[K]> | ConferenceOutputs[K] };

/** Evaluates the conference stack program for `conference` (and optional tls) with `mocks`. */
export function runConference(
  conference: unknown,
  options: { mocks?: RecordingMocks; tls?: unknown; testbedStack?: string; preview?: boolean } = {},
): Promise<OfflineResult<ConferenceStackOutputs>> {
  return runStack<ConferenceStackOutputs>("conference", {
    mocks: options.mocks ?? conferenceMocks(),
    ...(options.preview === undefined ? {} : { preview: options.preview }),
    config: {
      conference,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.testbedStack === undefined ? {} : { testbedStack: options.testbedStack }),
    },
    secretKeys: options.tls === undefined ? [] : ["tls"],
  });
}
