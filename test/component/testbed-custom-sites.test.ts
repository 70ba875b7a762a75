import { beforeAll, describe, expect, it } from "vitest";
import type { Registration } from "../../automation/engine/offline.ts";
import { ofType, runStack } from "../support/pulumi.ts";

const location = { city: "Council Bluffs", country: "US", lat: 41.26, lon: -95.86 };

let registrations: Registration[];

beforeAll(async () => {
  const sites = [
    {
      name: "gcp-us-central1",
      provider: "gke",
      location,
      region: "us-central1",
      regional: true,
      nodes: 1,
      machineType: "c3-standard-4",
      vcpuPerNode: 4,
      memoryGiBPerNode: 16,
      exposure: "nodePort",
      publicAddress: "203.0.113.50",
      logging: true,
      monitoring: true,
      deletionProtection: true,
      releaseChannel: "STABLE",
      diskType: "pd-ssd",
      diskSizeGb: 50,
      network: "conferences",
      mediaSourceRanges: ["192.0.2.0/24"],
    },
  ];
  ({ registrations } = await runStack("testbed", { config: { sites }, preview: true }));
});

describe("testbed stack with a site that overrides every default", () => {
  it("makes a regional cluster with logging, monitoring and deletion protection as asked", () => {
    const [cluster, ...others] = ofType(registrations, "gcp:container/cluster:Cluster");
    expect(others).toEqual([]);
    expect(cluster?.inputs).toMatchObject({
      location: "us-central1",
      loggingService: "logging.googleapis.com/kubernetes",
      monitoringService: "monitoring.googleapis.com/kubernetes",
      deletionProtection: true,
      releaseChannel: { channel: "STABLE" },
      network: "conferences",
    });
  });

  it("sizes the node pool as asked", () => {
    const [pool] = ofType(registrations, "gcp:container/nodePool:NodePool");
    expect(pool?.inputs).toMatchObject({
      location: "us-central1",
      nodeCount: 1,
      nodeConfig: { machineType: "c3-standard-4", diskSizeGb: 50, diskType: "pd-ssd" },
    });
  });

  it("opens the node-port range for media, from the given sources only", () => {
    const [rule] = ofType(registrations, "gcp:compute/firewall:Firewall");
    expect(rule?.inputs).toMatchObject({
      network: "conferences",
      allows: [{ protocol: "udp", ports: ["30000-32767"] }],
      sourceRanges: ["192.0.2.0/24"],
    });
  });
});
