import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Registry as MetricsRegistry } from "prom-client";
import type { Engine } from "../../engine/engine.ts";
import type { Store } from "../../store/store.ts";
import type { ClusterRegistry } from "../registry.ts";
import { health } from "../schemas.ts";

/** The probes (/healthz, /readyz: public, as a kubelet or a load balancer has no token) and /metrics (admins). */

/** How often /readyz may probe the store with a write. */
const STORE_PROBE_INTERVAL_MS = 1000;

export interface HealthRouteOptions {
  store: Pick<Store, "writable">;
  registry: Pick<ClusterRegistry, "loaded">;
  engine: Pick<Engine, "kind">;
  metrics: MetricsRegistry;
  /** False while the service starts or stops. */
  ready?: () => boolean;
}

export const healthRoutes: FastifyPluginAsyncZod<HealthRouteOptions> = async (app, { store, registry, engine, metrics, ready }) => {
  app.get("/healthz", { config: { auth: "public" }, schema: { hide: true, response: { 200: health } } }, () => ({ status: "ok" }));
  // The store's probe writes (a full disk shows only then); anyone may call /readyz, so it probes at most once a second.
  let storeProbe: { at: number; result: ReturnType<Store["writable"]> } | undefined;
  const storeWritable = () => {
    if (storeProbe === undefined || performance.now() - storeProbe.at >= STORE_PROBE_INTERVAL_MS) {
      storeProbe = { at: performance.now(), result: store.writable() };
    }
    return storeProbe.result;
  };
  app.get("/readyz", { config: { auth: "public" }, schema: { hide: true, response: { 200: health, 503: health } } }, (_request, reply) => {
    if (ready?.() === false || !registry.loaded()) {
      reply.code(503);
      return { status: "starting or stopping", engine: engine.kind };
    }
    const writable = storeWritable();
    if (!writable.ok) {
      reply.code(503);
      return { status: "the store cannot be written", engine: engine.kind, detail: writable.reason };
    }
    return { status: "ready", engine: engine.kind };
  });
  app.get("/metrics", { config: { admin: true }, schema: { hide: true } }, async (_request, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));
};
