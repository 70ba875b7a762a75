import { fastifySSE } from "@fastify/sse";
import fastifySwagger from "@fastify/swagger";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from "fastify";
import {
  type ZodTypeProvider,
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
} from "fastify-type-provider-zod";
import Negotiator from "negotiator";
import { z } from "zod";
import { candidateClusters } from "../../domain/decision/candidates.ts";
import { type DomainErrorCode, InvalidArgumentsError, isDomainError } from "../../domain/errors.ts";
import type { Engine } from "../engine/engine.ts";
import { type EventRecord, TERMINAL_STATES } from "../store/records.ts";
import type { ConferenceRecord, Store } from "../store/store.ts";
import type { Principal, TokenRegistry } from "./auth.ts";
import type { ConferenceManager } from "./conferences.ts";
import type { Registry as ClusterRegistry } from "./registry.ts";
import type { Registry as MetricsRegistry } from "prom-client";
import {
  DEFAULT_LIST_LIMIT,
  type Problem,
  clusterList,
  conferenceList,
  conferenceParams,
  conferenceRequest,
  conferenceView,
  createdView,
  eventsHeaders,
  health,
  idempotencyHeaders,
  listQuery,
  problem,
  streamEvent,
} from "./schemas.ts";
import { decisionRecord } from "../store/records.ts";

/**
 * The automation service's HTTP API (STYLE.md 13–16): builds the app and never listens; server.ts
 * owns the process. Every route but the two probes needs a bearer token.
 */

export interface AppDependencies {
  manager: ConferenceManager;
  store: Store;
  registry: ClusterRegistry;
  engine: Pick<Engine, "kind">;
  tokens: TokenRegistry;
  metrics: MetricsRegistry;
  /** pino options, or false for none; secrets are redacted whatever is given. */
  logger?: FastifyServerOptions["logger"];
  /** False while the service starts or stops. */
  ready?: () => boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Probes answer without a token: a kubelet or load balancer has none. */
    public?: boolean;
    /** Only admins may call it. */
    admin?: boolean;
  }
}

/** Headers and fields that hold secrets never reach a log line. */
export const REDACTED_PATHS = ["req.headers.authorization", "req.headers.cookie", 'req.headers["idempotency-key"]', "headers.authorization"];

const STATUS_OF: Readonly<Record<DomainErrorCode, number>> = {
  invalid_arguments: 400,
  not_found: 404,
  conflict: 409,
  exhausted: 409,
  solver_failed: 500,
};
const TITLE_OF: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  500: "Internal Server Error",
  503: "Service Unavailable",
};
// Documented under the media type sendProblem gives them, not the route's application/json.
const problemBody = { description: "RFC 9457 problem details", content: { "application/problem+json": { schema: problem } } };
/** Fastify's refusals of a JSON body it cannot parse, said as a field's problem (its own text names neither field nor fix). */
const BODY_REFUSALS: Readonly<Record<string, string>> = {
  FST_ERR_CTP_EMPTY_JSON_BODY: "is empty; send a JSON document, as Content-Type: application/json says",
  FST_ERR_CTP_INVALID_JSON_BODY: "is not valid JSON; send a JSON document, as Content-Type: application/json says",
};
const problemResponses = { 400: problemBody, 401: problemBody, 403: problemBody, 404: problemBody, 409: problemBody };

export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const logger = deps.logger === undefined || deps.logger === false ? false : { ...(typeof deps.logger === "object" ? deps.logger : {}), redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };
  const app = Fastify({
    logger,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    // Refused before routing, so before the error handler: a path that does not decode, a parameter past the router's limit.
    frameworkErrors: (error, _request, reply) => {
      void (error.code === "FST_ERR_MAX_PARAM_LENGTH"
        ? // A segment too long to be any route's parameter is a bad parameter: 400, as the routes document.
          sendProblem(reply, 400, "path has a segment too long to be a conference id; conference ids are at most 40 characters", [
            { field: "path", message: "has a segment too long to be a conference id; conference ids are at most 40 characters" },
          ])
        : sendProblem(reply, 400, "path is not valid percent-encoded UTF-8; encode each segment (encodeURIComponent)", [
            { field: "path", message: "is not valid percent-encoded UTF-8; encode each segment (encodeURIComponent)" },
          ]));
    },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "switch-vaas automation service", version: "1" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySSE, { heartbeatInterval: 15_000 });
  // Event streams follow a conference for as long as it lives; closing the app ends them.
  const closing = new AbortController();
  app.addHook("preClose", async () => closing.abort());

  app.addHook("onRequest", async (request, reply) => {
    if (request.routeOptions.config.public === true) {
      return;
    }
    const principal = deps.tokens.authenticate(request.headers.authorization);
    if (principal === undefined) {
      void reply.header("www-authenticate", 'Bearer realm="switch-vaas"');
      return sendProblem(reply, 401, "give a valid bearer token in the Authorization header (Authorization: Bearer <token>)");
    }
    if (request.routeOptions.config.admin === true && principal.role !== "admin") {
      return sendProblem(reply, 403, "this route is for admins");
    }
    request.principal = principal;
  });

  // A path that exists under other methods answers 405 with the methods it has (RFC 9110 §15.5.6).
  const routeMethods: { path: RegExp; method: string }[] = [];
  app.addHook("onRoute", (route) => {
    const path = new RegExp(`^${route.url.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/:[^/]+/g, "[^/]+").replace(/\*/g, ".*")}$`);
    for (const method of [route.method].flat()) {
      routeMethods.push({ path, method });
    }
  });
  const noRoute = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split("?")[0]!;
    const allowed = [...new Set(routeMethods.filter((route) => route.path.test(path)).map((route) => route.method))];
    if (allowed.length === 0) {
      return sendProblem(reply, 404, `no route ${request.method} ${path}`);
    }
    void reply.header("allow", allowed.join(", "));
    return sendProblem(reply, 405, `${path} has no method ${request.method}; use ${allowed.join(", ")}`);
  };
  app.setNotFoundHandler(noRoute);
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (request.is404) {
      // Fastify reads a body before it finds no route; what to say is that the route does not exist.
      return noRoute(request, reply);
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const where = error.validationContext ?? "body";
      const errors = error.validation.flatMap((issue) => {
        const path = issue.instancePath.split("/").filter((part) => part !== "");
        const field = [where, ...path].join(".");
        const keys = (issue.params as { keys?: string[] }).keys;
        return issue.keyword === "unrecognized_keys" && keys !== undefined
          ? keys.map((key) => ({ field, message: `has an unknown key "${key}"; remove it or correct its spelling` }))
          : [{ field, message: issue.message ?? "is not valid" }];
      });
      return sendProblem(reply, 400, errors.map((entry) => `${entry.field} ${entry.message}`).join("; "), errors);
    }
    if (isDomainError(error)) {
      const status = STATUS_OF[error.code];
      if (status >= 500) {
        request.log.error({ err: error }, "domain failure");
        return sendProblem(reply, status);
      }
      if (!(error instanceof InvalidArgumentsError)) {
        return sendProblem(reply, status, error.message.replaceAll("\n", "; "));
      }
      // The manager names a request's fields as the body has them; a problem names them where they are, as validation does.
      const errors = error.problems.map((line) => {
        const field = line.split(" ")[0]!;
        return { field: isBodyField(request.body, field) ? `body.${field}` : field, message: line.slice(line.indexOf(" ") + 1) };
      });
      return sendProblem(reply, status, errors.map((entry) => `${entry.field} ${entry.message}`).join("; "), errors);
    }
    const bodyRefusal = BODY_REFUSALS[error.code];
    if (bodyRefusal !== undefined) {
      return sendProblem(reply, 400, `body ${bodyRefusal}`, [{ field: "body", message: bodyRefusal }]);
    }
    if (!isResponseSerializationError(error) && typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500) {
      // Fastify's own refusals (a body too large, of another media type).
      return sendProblem(reply, error.statusCode, error.message);
    }
    request.log.error({ err: error }, "request failed");
    return sendProblem(reply, 500);
  });

  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.get("/healthz", { config: { public: true }, schema: { hide: true, response: { 200: health } } }, () => ({ status: "ok" }));
  routes.get("/readyz", { config: { public: true }, schema: { hide: true, response: { 200: health, 503: health } } }, (_request, reply) => {
    if (deps.ready?.() === false || !deps.registry.loaded()) {
      reply.code(503);
      return { status: "starting or stopping", engine: deps.engine.kind };
    }
    return { status: "ready", engine: deps.engine.kind };
  });
  routes.get("/metrics", { config: { admin: true }, schema: { hide: true } }, async (_request, reply) =>
    reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()),
  );
  routes.get("/openapi.json", { schema: { hide: true } }, () => app.swagger());

  routes.post(
    "/v1/conferences",
    {
      schema: {
        summary: "Create a conference: placed and sized now, deployed in the background",
        body: conferenceRequest,
        headers: idempotencyHeaders,
        response: { 202: createdView, ...problemResponses },
      },
    },
    (request, reply) => {
      const conference = deps.manager.create(request.principal!.subject, request.body, request.headers["idempotency-key"]);
      const self = `/v1/conferences/${conference.id}`;
      reply.code(202).header("location", self);
      return { id: conference.id, state: conference.state, decision: conference.decision, links: { self, events: `${self}/events` } };
    },
  );

  routes.get(
    "/v1/conferences",
    { schema: { summary: "Your conferences (every one, for admins), newest first", querystring: listQuery, response: { 200: conferenceList, ...problemResponses } } },
    (request) => ({
      conferences: deps.manager.list(viewerOf(request), { ...(request.query.state === undefined ? {} : { state: request.query.state }), limit: request.query.limit ?? DEFAULT_LIST_LIMIT }).map(viewOf),
    }),
  );

  routes.get(
    "/v1/conferences/:id",
    { schema: { summary: "A conference and its progress", params: conferenceParams, response: { 200: conferenceView, ...problemResponses } } },
    (request) => viewOf(deps.manager.get(request.params.id, viewerOf(request))),
  );

  routes.delete(
    "/v1/conferences/:id",
    { schema: { summary: "Stop a conference (idempotent); a deployment in flight is cancelled", params: conferenceParams, response: { 202: conferenceView, ...problemResponses } } },
    (request, reply) => {
      const conference = viewOf(deps.manager.stop(request.params.id, viewerOf(request)));
      reply.code(202);
      return conference;
    },
  );

  routes.get(
    "/v1/conferences/:id/events",
    {
      // "manual": the preHandler below negotiates, so that a refusal is a problem like every other.
      sse: { kind: "manual" },
      schema: {
        summary: "The conference's progress as Server-Sent Events (placed, queued, deploying, ready, failed, stopping, stopped); Last-Event-ID replays",
        params: conferenceParams,
        headers: eventsHeaders,
        produces: ["text/event-stream"],
        response: {
          200: { description: "One event per change; the stream ends after stopped or failed", content: { "text/event-stream": { schema: streamEvent } } },
          // The HTML standard's signal to an EventSource to stop reconnecting.
          204: z.null().describe("The conference has ended and every event up to Last-Event-ID was received"),
          ...problemResponses,
          406: problemBody,
        },
      },
      preHandler: async (request, reply) => {
        if (!acceptsEventStream(request)) {
          return sendProblem(reply, 406, "this route only streams text/event-stream; send Accept: text/event-stream, or no Accept header");
        }
      },
    },
    async (request, reply) => {
      const conference = deps.manager.get(request.params.id, viewerOf(request));
      const after = Number(request.headers["last-event-id"] ?? 0);
      if (!(await streamEvents(deps.store, conference, after, reply, closing.signal))) {
        return reply.code(204).send(null);
      }
    },
  );

  routes.post(
    "/v1/placements",
    { schema: { summary: "Where a conference would be placed now, and its size; changes nothing", body: conferenceRequest, response: { 200: decisionRecord, ...problemResponses } } },
    (request) => deps.manager.place(request.body),
  );

  routes.get("/v1/clusters", { schema: { summary: "The clusters conferences are placed on, with what is free", response: { 200: clusterList, ...problemResponses } } }, () => {
    const clusters = deps.registry.clusters();
    const running = deps.store.running();
    const free = candidateClusters(clusters, running);
    return {
      engine: deps.engine.kind,
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

  return app;
}

/** Whether `field` ("participants.0.ip") starts with a key of the request's JSON body. */
function isBodyField(body: unknown, field: string): boolean {
  return typeof body === "object" && body !== null && !Array.isArray(body) && Object.hasOwn(body, field.split(".")[0]!);
}

function viewerOf(request: FastifyRequest): { subject: string; admin: boolean } {
  return { subject: request.principal!.subject, admin: request.principal!.role === "admin" };
}

/** A conference as the API shows it: the record without the stack config (the decision says it). */
function viewOf(conference: ConferenceRecord): z.input<typeof conferenceView> {
  const { spec: _spec, ...view } = conference;
  return view;
}

function sendProblem(reply: FastifyReply, status: number, detail?: string, errors?: Problem["errors"]): FastifyReply {
  const body: Problem = {
    // RFC 9457 §4.2.1: "about:blank" — the status and its title say what happened; detail says why.
    type: "about:blank",
    title: TITLE_OF[status] ?? "Error",
    status,
    // 5xx bodies say nothing internal: the log has the error.
    ...(detail === undefined || status >= 500 ? {} : { detail }),
    ...(errors === undefined ? {} : { errors }),
  };
  return reply.code(status).type("application/problem+json").serializer(JSON.stringify).send(body);
}

/** Whether the request's Accept header admits text/event-stream (RFC 9110 §12.5.1); none admits any type. */
function acceptsEventStream(request: FastifyRequest): boolean {
  return new Negotiator(request).mediaType(["text/event-stream"]) !== undefined;
}

/**
 * Replays the conference's events after `after` from the store, then follows new ones until the
 * conference ends or the client goes. Subscribing before the replay and skipping what the replay
 * sent loses nothing between the two. False when there was nothing to stream: the conference had
 * ended and `after` was its last event or later.
 */
async function streamEvents(store: Store, conference: ConferenceRecord, after: number, reply: FastifyReply, closing: AbortSignal): Promise<boolean> {
  const sse = reply.sse;
  const live: EventRecord[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = store.onEvent((event) => {
    if (event.conferenceId === conference.id) {
      live.push(event);
      wake?.();
    }
  });
  let closed = closing.aborted;
  const end = () => {
    closed = true;
    wake?.();
  };
  sse.onClose(end);
  closing.addEventListener("abort", end, { once: true });
  try {
    let last = after;
    const send = async (event: EventRecord) => {
      if (event.id <= last) {
        return false;
      }
      last = event.id;
      await sse.send({ id: String(event.id), event: event.type, data: { ...event.data, at: event.at } });
      return event.type === "stopped" || event.type === "failed";
    };
    for (const event of store.eventsAfter(conference.id, after)) {
      if (await send(event)) {
        return true;
      }
    }
    if (TERMINAL_STATES.includes(store.conference(conference.id)!.state) && live.length === 0) {
      return last !== after;
    }
    // The stream is open now, an event due or not: a client waits on a 200, not on silence.
    sse.sendHeaders();
    // writeHead only queues the head; Node sends it with the first body byte unless flushed.
    reply.raw.flushHeaders();
    while (!closed) {
      const event = live.shift();
      if (event === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      if (await send(event)) {
        return true;
      }
    }
    return true;
  } finally {
    closing.removeEventListener("abort", end);
    unsubscribe();
  }
}
