import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type OfflineResult, RecordingMocks, type Registration, isSecretEnvelope, providerName } from "../../automation/engine/offline.ts";
import type { ClusterOutput } from "../../components/testbed/testbed.ts";
import { isKubernetesObject, validateKubernetesObject } from "../support/kubernetes-schema.ts";
import { kubeconfigWithoutCredentials } from "../../components/testbed/kubeconfig.ts";
import { ofType, outputOf, runStack } from "../support/pulumi.ts";

const KUBECONFIGS = {
  "flexiops-edinburgh": kubeconfigWithoutCredentials("https://198.51.100.10:6443", "flexiops"),
  "arnes-ljubljana": kubeconfigWithoutCredentials("https://arnes-k8s.example.org:6443", "arnes"),
};

/** What GKE would report for a new cluster. */
function gkeComputed(resource: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
  if (resource.type === "gcp:container/cluster:Cluster") {
    return {
      name: `${resource.name}-1a2b3c4`,
      endpoint: `endpoint.${resource.name}.example`,
      masterAuth: { clusterCaCertificate: `ca-of-${resource.name}` },
    };
  }
  return {};
}

const GKE_SITES = [
  ["gcp-asia-east1", "asia-east1", "asia-east1-b"],
  ["gcp-asia-northeast1", "asia-northeast1", "asia-northeast1-b"],
  ["gcp-asia-southeast1", "asia-southeast1", "asia-southeast1-b"],
  ["gcp-europe-west1", "europe-west1", "europe-west1-b"],
  ["gcp-us-west1", "us-west1", "us-west1-b"],
] as const;
const EXISTING_SITES = ["arnes-ljubljana", "flexiops-edinburgh"] as const;
const ALL_SITES = [...GKE_SITES.map(([name]) => name), ...EXISTING_SITES].sort();

let result: OfflineResult<{ clusters: Record<string, ClusterOutput> }>;
let registrations: Registration[];

beforeAll(async () => {
  result = await runStack("testbed", { mocks: new RecordingMocks(gkeComputed), config: { kubeconfigs: KUBECONFIGS }, secretKeys: ["kubeconfigs"] });
  registrations = result.registrations;
});

describe("testbed stack with the paper's seven sites", () => {
  it("creates exactly five zonal GKE clusters in the paper's regions, logging and monitoring off", () => {
    const clusters = ofType(registrations, "gcp:container/cluster:Cluster");
    expect(clusters.map((cluster) => [cluster.name, cluster.inputs.location]).sort()).toEqual(
      GKE_SITES.map(([name, , zone]) => [name, zone]),
    );
    for (const cluster of clusters) {
      expect(cluster.inputs).toMatchObject({
        removeDefaultNodePool: true,
        initialNodeCount: 1,
        networkingMode: "VPC_NATIVE",
        ipAllocationPolicy: {},
        datapathProvider: "ADVANCED_DATAPATH",
        loggingService: "none",
        monitoringService: "none",
        releaseChannel: { channel: "REGULAR" },
        deletionProtection: false,
        network: "default",
        resourceLabels: { "managed-by": "switch-vaas", site: cluster.name },
      });
    }
  });

  it("gives each GKE cluster one managed pool of two n1-standard-1 nodes on 100 GB standard disks", () => {
    const pools = ofType(registrations, "gcp:container/nodePool:NodePool");
    expect(pools.map((pool) => pool.name).sort()).toEqual(GKE_SITES.map(([name]) => name));
    for (const pool of pools) {
      const zone = GKE_SITES.find(([name]) => name === pool.name)?.[2];
      expect(pool.inputs).toEqual({
        cluster: `${pool.name}-1a2b3c4`,
        location: zone,
        nodeCount: 2,
        management: { autoRepair: true, autoUpgrade: true },
        nodeConfig: {
          machineType: "n1-standard-1",
          diskSizeGb: 100,
          diskType: "pd-standard",
          oauthScopes: ["https://www.googleapis.com/auth/cloud-platform"],
          tags: [`${pool.name}-media`],
          labels: { "managed-by": "switch-vaas", site: pool.name },
        },
      });
    }
  });

  it("opens the bridge's UDP media port, and nothing else, to each GKE cluster's nodes", () => {
    const firewalls = ofType(registrations, "gcp:compute/firewall:Firewall");
    expect(firewalls.map((rule) => rule.name).sort()).toEqual(GKE_SITES.map(([name]) => `${name}-media`));
    for (const rule of firewalls) {
      expect(rule.inputs).toMatchObject({
        network: "default",
        direction: "INGRESS",
        allows: [{ protocol: "udp", ports: ["10000"] }],
        sourceRanges: ["0.0.0.0/0"],
        targetTags: [rule.name],
      });
    }
  });

  it("reaches exactly the two existing clusters by kubeconfig", () => {
    const existing = ofType(registrations, "switch-vaas:testbed:ExistingCluster");
    expect(existing.map((cluster) => cluster.name).sort()).toEqual([...EXISTING_SITES]);
  });

  it("builds one Kubernetes provider per cluster from that cluster's kubeconfig, kept secret", () => {
    const providers = ofType(registrations, "pulumi:providers:kubernetes");
    expect(providers.map((provider) => provider.name).sort()).toEqual(ALL_SITES);
    for (const provider of providers) {
      const kubeconfig = provider.inputs.kubeconfig;
      expect(isSecretEnvelope(kubeconfig)).toBe(true);
      const text = (kubeconfig as { value: string }).value;
      if (provider.name in KUBECONFIGS) {
        expect(text).toBe(KUBECONFIGS[provider.name as keyof typeof KUBECONFIGS]);
        expect(provider.inputs.clusterIdentifier).toBe(provider.name);
      } else {
        const parsed = parse(text) as { clusters: { cluster: Record<string, string> }[]; users: { user: { exec: Record<string, unknown> } }[] };
        expect(parsed.clusters[0]?.cluster).toEqual({
          server: `https://endpoint.${provider.name}.example`,
          "certificate-authority-data": `ca-of-${provider.name}`,
        });
        expect(parsed.users[0]?.user.exec).toMatchObject({ command: "gke-gcloud-auth-plugin", provideClusterInfo: true });
        expect(provider.inputs.clusterIdentifier).toBe(`${provider.name}-id`);
      }
    }
  });

  it("bootstraps every cluster through its own provider, never a default one", () => {
    const objects = registrations.filter(isKubernetesObject);
    expect(objects).toHaveLength(ALL_SITES.length * 5);
    for (const site of ALL_SITES) {
      const ofSite = objects.filter((object) => providerName(object) === site);
      expect(ofSite.map((object) => object.type).sort()).toEqual([
        "kubernetes:core/v1:Namespace",
        "kubernetes:core/v1:ServiceAccount",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
        "kubernetes:scheduling.k8s.io/v1:PriorityClass",
      ]);
      expect(ofSite.every((object) => object.name.startsWith(`${site}-`))).toBe(true);
    }
  });

  it("binds the deployer ServiceAccount to the deployer ClusterRole in switch-system", () => {
    const binding = ofType(registrations, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")[0];
    expect(binding?.inputs).toMatchObject({
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "switch-vaas-conference-deployer" },
      subjects: [{ kind: "ServiceAccount", name: "switch-vaas-deployer", namespace: "switch-system" }],
    });
    const role = ofType(registrations, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")[0];
    const verbs = (role?.inputs.rules as { verbs: string[] }[]).flatMap((rule) => rule.verbs);
    expect(verbs).not.toContain("*");
    expect(verbs).not.toContain("escalate");
    expect(verbs).not.toContain("bind");
  });

  it("creates only Kubernetes objects that validate against the Kubernetes schemas", async () => {
    const objects = registrations.filter(isKubernetesObject);
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) {
      await validateKubernetesObject(object);
    }
  });

  it("outputs every cluster's location, exposure and capacity, and its kubeconfig as a secret", async () => {
    const { clusters } = result.outputs;
    expect(Object.keys(clusters).sort()).toEqual(ALL_SITES);
    const entries = await Promise.all(
      Object.entries(clusters).map(async ([name, { kubeconfig: _secret, publicAddress, ...rest }]): Promise<[string, object]> => [
        name,
        publicAddress === undefined ? rest : { ...rest, publicAddress: await outputOf(publicAddress) },
      ]),
    );
    const plain = Object.fromEntries(entries);
    const gke = (region: string, zone: string, city: string, country: string, lat: number, lon: number) => ({
      provider: "gke",
      region,
      zone,
      location: { city, country, lat, lon },
      exposure: "loadBalancer",
      capacity: { nodes: 2, vcpuPerNode: 1, memoryGiBPerNode: 3.75 },
    });
    expect(plain).toEqual({
      "flexiops-edinburgh": {
        provider: "kubeconfig",
        location: { city: "Edinburgh", country: "GB", lat: 55.9533, lon: -3.1883 },
        exposure: "nodePort",
        publicAddress: "198.51.100.10",
        capacity: { nodes: 2, vcpuPerNode: 4, memoryGiBPerNode: 4 },
      },
      "arnes-ljubljana": {
        provider: "kubeconfig",
        location: { city: "Ljubljana", country: "SI", lat: 46.0569, lon: 14.5058 },
        exposure: "nodePort",
        publicAddress: "arnes-k8s.example.org",
        capacity: { nodes: 2, vcpuPerNode: 1, memoryGiBPerNode: 4 },
      },
      "gcp-us-west1": gke("us-west1", "us-west1-b", "The Dalles", "US", 45.5946, -121.1787),
      "gcp-europe-west1": gke("europe-west1", "europe-west1-b", "St. Ghislain", "BE", 50.4542, 3.8183),
      "gcp-asia-east1": gke("asia-east1", "asia-east1-b", "Changhua County", "TW", 24.0518, 120.5161),
      "gcp-asia-southeast1": gke("asia-southeast1", "asia-southeast1-b", "Jurong West", "SG", 1.3404, 103.709),
      "gcp-asia-northeast1": gke("asia-northeast1", "asia-northeast1-b", "Tokyo", "JP", 35.6762, 139.6503),
    });
    for (const [name, cluster] of Object.entries(clusters)) {
      expect(await pulumi.isSecret(cluster.kubeconfig), name).toBe(true);
    }
    expect(await outputOf(clusters["arnes-ljubljana"]!.kubeconfig)).toBe(KUBECONFIGS["arnes-ljubljana"]);
  });
});
