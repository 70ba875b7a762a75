import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { candidateClusters } from "../../../domain/decision/candidates.ts";
import type { Engine } from "../../engine/engine.ts";
import type { Store } from "../../store/store.ts";
import { problemResponses } from "../plugins/problems.ts";
import type { ClusterRegistry } from "../registry.ts";
import { clusterList } from "../schemas.ts";

/** Clusters: those conferences are placed on, with what each has free and how many conferences hold it. */

export interface ClusterRouteOptions {
  registry: Pick<ClusterRegistry, "clusters">;
  store: Pick<Store, "running">;
  engine: Pick<Engine, "kind">;
}

export const clusterRoutes: FastifyPluginAsyncZod<ClusterRouteOptions> = async (app, { registry, store, engine }) => {
  app.get("/v1/clusters", { schema: { summary: "The clusters conferences are placed on, with what is free", response: { 200: clusterList, ...problemResponses } } }, () => {
    const clusters = registry.clusters();
    const running = store.running();
    const free = candidateClusters(clusters, running);
    return {
      engine: engine.kind,
      clusters: Object.fromEntries(
        Object.entries(clusters).map(([name, cluster]) => [
          name,
          {
            provider: cluster.provider,
            ...(cluster.region === undefined ? {} : { region: cluster.region }),
            ...(cluster.zone === undefined ? {} : { zone: cluster.zone }),
            location: cluster.location,
            exposure: cluster.exposure,
            capacity: cluster.capacity,
            free: free[name]!.free,
            conferences: running.filter((conference) => conference.cluster === name).length,
          },
        ]),
      ),
    };
  });
};
