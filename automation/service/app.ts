import { fastifySSE } from "@fastify/sse";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import { type ZodTypeProvider, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import type { Registry as MetricsRegistry } from "prom-client";
import type { Engine } from "../engine/engine.ts";
import type { Store } from "../store/store.ts";
import type { TokenRegistry } from "./auth.ts";
import type { ConferenceManager } from "./conferences.ts";
import type { ServiceLimits } from "./environment.ts";
import type { OrphanStacks } from "./orphans.ts";
import type { PopLoops } from "./loops/pop-loop.ts";
import { auth } from "./plugins/auth.ts";
import { requestHardening } from "./plugins/hardening.ts";
import { jsonBody } from "./plugins/json-body.ts";
import { openapi } from "./plugins/openapi.ts";
import { problems } from "./plugins/problems.ts";
import { requestLogger } from "./plugins/request-log.ts";
import type { ClusterRegistry } from "./registry.ts";
import { clusterRoutes } from "./routes/clusters.ts";
import { conferenceRoutes } from "./routes/conferences.ts";
import { healthRoutes } from "./routes/health.ts";
import { orphanStackRoutes } from "./routes/orphan-stacks.ts";
import { placementRoutes } from "./routes/placements.ts";
import { popRoutes } from "./routes/pops.ts";

export { MAX_LISTED_ERRORS } from "./plugins/problems.ts";
export { REDACTED_PATHS } from "./plugins/request-log.ts";

/**
 * The automation service's HTTP API (STYLE.md 13–16): builds the app from its dependencies and
 * never listens; server.ts owns the process. The plugins/ are what every route shares (problems,
 * request hardening, authentication chosen per route, /openapi.json); routes/ has one module per
 * resource. Every route but the two probes and the PoP hosts' reports (signed by their agents)
 * needs a bearer token.
 */

export interface AppDependencies {
  manager: ConferenceManager;
  /** The PoPs' loops; undefined when SWITCH_POPS names none. */
  pops?: PopLoops | undefined;
  store: Store;
  registry: ClusterRegistry;
  engine: Pick<Engine, "kind">;
  tokens: TokenRegistry;
  metrics: MetricsRegistry;
  /** pino options, or false for none; secrets are redacted whatever is given. */
  logger?: FastifyServerOptions["logger"];
  /** False while the service starts or stops. */
  ready?: () => boolean;
  /** Conference stacks no record owns, for the admin routes. */
  orphans: OrphanStacks;
  /** Where failures of background work the routes start are logged. */
  onBackgroundError?: (error: unknown) => void;
  /** How long a request may take to arrive, and how many event streams stay open. */
  limits: ServiceLimits;
}

export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const { manager, store, registry, engine, tokens, metrics, ready, orphans, limits } = deps;
  const hardening = requestHardening(limits);
  const app = Fastify({ ...hardening.options, logger: requestLogger(deps.logger) }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // Plugins first, as each reaches only the routes registered after it; of the onRequest hooks, hardening's comes before auth's.
  await app.register(problems);
  await app.register(hardening.plugin);
  await app.register(jsonBody);
  await app.register(auth, { tokens });
  await app.register(openapi);
  await app.register(fastifySSE, { heartbeatInterval: 15_000 });

  await app.register(healthRoutes, { store, registry, engine, metrics, ready });
  await app.register(conferenceRoutes, { manager, store, limits });
  await app.register(placementRoutes, { manager });
  await app.register(clusterRoutes, { registry, store, engine });
  await app.register(orphanStackRoutes, { orphans, onBackgroundError: deps.onBackgroundError ?? (() => undefined) });
  await app.register(popRoutes, { pops: deps.pops });
  return app;
}
