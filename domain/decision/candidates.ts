import type { ConferenceSpec } from "../contracts/conference.ts";
import type { TestbedCluster } from "../contracts/testbed.ts";
import { formatBytes, formatMillicores, parseCpuMillicores, parseMemoryBytes } from "../quantity.ts";
import type { CandidateCluster } from "./schema.ts";

const GIBIBYTE = 1024 ** 3;

/** A conference that holds capacity on a cluster: placed, being deployed or running. */
export type RunningConference = Pick<ConferenceSpec, "cluster" | "resources">;

/**
 * The clusters a new conference may be placed on: the testbed's clusters with what is free on
 * each, their capacity minus the resources of the conferences already on them (never below zero).
 * Conferences on a cluster the testbed no longer has hold nothing that can be placed on.
 */
export function candidateClusters(
  clusters: Readonly<Record<string, Pick<TestbedCluster, "location" | "capacity">>>,
  running: readonly RunningConference[],
): Record<string, CandidateCluster> {
  const used = new Map<string, { millicores: number; bytes: number }>();
  for (const conference of running) {
    const sum = used.get(conference.cluster) ?? { millicores: 0, bytes: 0 };
    // The conference spec admits only quantities, so these parse.
    sum.millicores += parseCpuMillicores(conference.resources.cpu) ?? 0;
    sum.bytes += parseMemoryBytes(conference.resources.memory) ?? 0;
    used.set(conference.cluster, sum);
  }
  return Object.fromEntries(
    Object.entries(clusters).map(([name, cluster]) => {
      const { nodes, vcpuPerNode, memoryGiBPerNode } = cluster.capacity;
      const taken = used.get(name) ?? { millicores: 0, bytes: 0 };
      const freeMillicores = Math.max(0, Math.floor(nodes * vcpuPerNode * 1000) - taken.millicores);
      const freeBytes = Math.max(0, Math.floor(nodes * memoryGiBPerNode * GIBIBYTE) - taken.bytes);
      return [
        name,
        {
          location: { lat: cluster.location.lat, lon: cluster.location.lon },
          capacity: { ...cluster.capacity },
          free: { cpu: formatMillicores(freeMillicores), memory: formatBytes(freeBytes) },
        },
      ];
    }),
  );
}
