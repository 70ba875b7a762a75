import { z } from "zod";

/**
 * The testbed stack's `clusters` output as other stacks and the service read it (resolved, through
 * a StackReference): ARCHITECTURE.md "Stack contracts". ClusterInfo in testbed.ts is the same
 * shape before resolution; a test parses the testbed's real output with this schema.
 */
export const testbedClusters = z.record(
  z.string(),
  z.object({
    provider: z.enum(["gke", "kubeconfig"]),
    region: z.string().optional(),
    zone: z.string().optional(),
    location: z.object({ lat: z.number(), lon: z.number(), city: z.string(), country: z.string() }),
    kubeconfig: z.string().min(1),
    exposure: z.enum(["loadBalancer", "nodePort"]),
    publicAddress: z.string().optional(),
    capacity: z.object({ nodes: z.number(), vcpuPerNode: z.number(), memoryGiBPerNode: z.number() }),
  }),
);

export type TestbedClusters = z.output<typeof testbedClusters>;
export type TestbedCluster = TestbedClusters[string];
