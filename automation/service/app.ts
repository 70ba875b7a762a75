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
import { type IncomingHttpHeaders, type ServerResponse, maxHeaderSize } from "node:http";
import type { Socket } from "node:net";
import { z } from "zod";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { candidateClusters } from "../../domain/decision/candidates.ts";
import { type DomainErrorCode, InvalidArgumentsError, isDomainError } from "../../domain/errors.ts";
import type { Engine } from "../engine/engine.ts";
import { TERMINAL_STATES } from "../../domain/conference-lifecycle.ts";
import type { EventRecord } from "../store/records.ts";
import { type ConferenceRecord, type Store, isStoreUnavailable } from "../store/store.ts";
import type { Principal, TokenRegistry } from "./auth.ts";
import type { ConferenceManager } from "./conferences.ts";
import type { OrphanStacks } from "./orphans.ts";
import { orphanStackRoutes } from "./routes/orphan-stacks.ts";
import type { ServiceLimits } from "./environment.ts";
import type { ClusterRegistry } from "./registry.ts";
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
  encodeCursor,
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
  /** Conference stacks no record owns, for the admin routes. */
  orphans: OrphanStacks;
  /** Where failures of background work the routes start are logged. */
  onBackgroundError?: (error: unknown) => void;
  /** How long a request may take to arrive, and how many event streams stay open. */
  limits: ServiceLimits;
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

/**
 * The request headers a log line shows (requestLogLine): what tells one client and request from
 * another. Cookies are not among them (the API takes none); the two that hold secrets are, so that
 * a line says they were sent, and REDACTED_PATHS censors their values.
 */
const LOGGED_HEADERS = ["authorization", "idempotency-key", "content-type", "content-length", "accept", "last-event-id", "user-agent"] as const;
/** The logged headers that hold secrets: a log line says "[redacted]" where their values were. */
export const REDACTED_PATHS = ["req.headers.authorization", 'req.headers["idempotency-key"]'];
/** Query parameters a log line shows with their values: the list's own. Any other could carry a secret (?access_token=…). */
const LOGGED_PARAMETERS: ReadonlySet<string> = new Set(Object.keys(listQuery.shape));
/** A parameter's name a log line shows beside "[redacted]"; a longer or stranger one may itself be the secret. */
const LOGGABLE_NAME = /^[A-Za-z0-9_.-]{1,32}$/;

/** The most errors a 400 lists: enough to correct a request by, few enough that a refusal stays small whatever was sent. */
export const MAX_LISTED_ERRORS = 20;
/** How much of an unknown key a refusal quotes, in characters: enough to find it by. */
const QUOTED_KEY_LENGTH = 40;

/**
 * What a refused event stream's client is told to wait, in seconds. Streams end when their
 * conferences do or their clients go, neither of which is known here; half a minute keeps a
 * client that retries at it from hammering the service.
 */
const STREAM_RETRY_AFTER_S = 30;
/**
 * How many times per request timeout Node looks for requests past it (connectionsCheckingInterval,
 * https://nodejs.org/api/http.html#httpcreateserveroptions-requestlistener: 30 s by default, which
 * would let a 500 ms timeout run for 30 s): a stalled request is closed within 1¼ timeouts.
 */
const TIMEOUT_CHECKS = 4;
/** The longest interval between those checks, Node's own default. */
const MAX_CHECK_INTERVAL_MS = 30_000;

/** How often /readyz may probe the store with a write. */
const STORE_PROBE_INTERVAL_MS = 1000;
/** What a 503 for a store that refused a write asks a client to wait: the reconciler looks every 10 s. */
const STORE_RETRY_AFTER_S = 5;

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
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  417: "Expectation Failed",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};
// Documented under the media type sendProblem gives them, not the route's application/json.
const problemBody = { description: "RFC 9457 problem details", content: { "application/problem+json": { schema: problem } } };
/** A refusal to open one more event stream: a problem, and when to try again. */
const streamRefusal = (description: string) => ({
  ...problemBody,
  description,
  headers: { "retry-after": { type: "integer", minimum: 1, description: "Seconds to wait before asking for the stream again" } },
});
/** The one media type the service reads a body in: every route that takes a body takes JSON. */
const BODY_MEDIA_TYPE = "application/json";
/** How a 415 says what to send. */
const SEND_JSON = `send the body as ${BODY_MEDIA_TYPE}, with Content-Type: ${BODY_MEDIA_TYPE}`;
/** Why a key that can replace an object's prototype is refused, whichever of the two it is. */
const PROTOTYPE_KEY_REASON = "which is not allowed: it can replace the prototype of an object it is merged into; remove it";
/** How deep in a body a refused key's object is named; deeper, the refusal names the body. */
const MAX_NAMED_DEPTH = 8;
/** A key a field's name shows as it is: the request's own keys and indexes are such. */
const NAMEABLE_KEY = /^[A-Za-z0-9_]{1,40}$/;

/** A JSON body the service does not read, as a field's problem: the parser's refusal, which the error handler sends. */
class BodyRefusal extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field} ${reason}`);
  }
}
// 503: the store refused a write (locked by another process, a full disk, its file replaced); Retry-After says when to try again.
const problemResponses = { 400: problemBody, 401: problemBody, 403: problemBody, 404: problemBody, 409: problemBody, 503: problemBody };

export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const { limits } = deps;
  const given = typeof deps.logger === "object" ? deps.logger : {};
  const logger =
    deps.logger === undefined || deps.logger === false
      ? false
      : { ...given, serializers: { ...given.serializers, req: requestLogLine }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };
  // The response a connection's latest request has, so that a refusal of the connection never lands inside it.
  const responses = new WeakMap<Socket, ServerResponse>();
  const requestTimeout = limits.SWITCH_REQUEST_TIMEOUT_MS;
  const app = Fastify({
    logger,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    // Node waits for a request's head and body for as long as a client pauses unless told. Fastify sets
    // requestTimeout on its server after making it with `http` (node_modules/fastify/lib/server.js);
    // `http` has it too, as Node refuses a headersTimeout above the requestTimeout it is made with.
    requestTimeout,
    http: {
      requestTimeout,
      headersTimeout: requestTimeout,
      connectionsCheckingInterval: Math.min(MAX_CHECK_INTERVAL_MS, Math.ceil(requestTimeout / TIMEOUT_CHECKS)),
      // Node answers an HTTP/1.1 request without Host with an empty 400 of its own; the onRequest hook answers it with a problem.
      requireHostHeader: false,
    },
    // Node's refusals of a connection (a request not received in time, a head too large or malformed): a problem like every other, written on the socket.
    clientErrorHandler: (error, socket) => {
      if (error.code === "ECONNRESET" || socket.destroyed) {
        return;
      }
      const response = responses.get(socket);
      // Node's own rule (lib/_http_server.js socketOnError): never write into a response that has begun.
      if (socket.writable && (response === undefined || !response.headersSent || response.writableEnded)) {
        const [status, detail] = clientRefusal(error.code, requestTimeout);
        const { headers, body } = closingProblem(status, detail);
        socket.write(`HTTP/1.1 ${status} ${TITLE_OF[status]}\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("")}\r\n${body}`);
      }
      socket.destroy(error);
    },
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
  // Fastify's own JSON parser refuses a key that can replace a prototype (secure-json-parse) as "not
  // valid JSON", its reason dropped; this one refuses it too, and says so.
  app.removeContentTypeParser(BODY_MEDIA_TYPE);
  app.addContentTypeParser(BODY_MEDIA_TYPE, { parseAs: "string" }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  // Node answers an Expect header other than 100-continue with an empty 417 of its own unless this event is listened to.
  app.server.on("checkExpectation", (_request, response: ServerResponse) => {
    const { headers, body } = closingProblem(417, "the service meets no expectation but 100-continue; send no Expect header, or Expect: 100-continue");
    response.writeHead(417, headers).end(body);
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "switch-vaas automation service", version: "1" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: (document) => {
      const transformed = jsonSchemaTransform(document);
      // The transform keeps a response's description and content only; a response's headers (Retry-After) are the route's own.
      const given = (document.schema as { response?: Record<string, { headers?: unknown }> } | undefined)?.response ?? {};
      const documented = (transformed.schema as { response?: Record<string, Record<string, unknown>> }).response ?? {};
      for (const [status, response] of Object.entries(given)) {
        if (response.headers !== undefined && documented[status] !== undefined) {
          documented[status].headers = response.headers;
        }
      }
      return transformed;
    },
  });
  await app.register(fastifySSE, { heartbeatInterval: 15_000 });
  // Event streams follow a conference for as long as it lives; closing the app ends them.
  const closing = new AbortController();
  app.addHook("preClose", async () => closing.abort());
  const streams = streamSlots(limits.SWITCH_STREAMS_PER_SUBJECT, limits.SWITCH_STREAMS_TOTAL);

  app.addHook("onRequest", async (request, reply) => {
    responses.set(request.raw.socket, reply.raw);
    if (request.raw.httpVersion === "1.1" && request.headers.host === undefined) {
      const message = "is missing; HTTP/1.1 requires one: send Host: <the service's host and port>";
      // As Node's own answer did: a client this far off is not one to keep talking to.
      void reply.header("connection", "close");
      return sendProblem(reply, 400, `headers.host ${message}`, [{ field: "headers.host", message }]);
    }
    if (request.routeOptions.config.public === true) {
      return;
    }
    // Node keeps the first of several Authorization headers and drops the rest (https://nodejs.org/api/http.html#messageheaders):
    // which one a proxy or a client meant is anyone's guess.
    const authorizations = request.raw.rawHeaders.filter((name, index) => index % 2 === 0 && name.toLowerCase() === "authorization").length;
    if (authorizations > 1) {
      const message = `is given ${authorizations} times; send one Authorization header`;
      return sendProblem(reply, 400, `headers.authorization ${message}`, [{ field: "headers.authorization", message }]);
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
          ? keys.map((key) => ({ field, message: `has an unknown key ${quotedKey(key)}; remove it or correct its spelling` }))
          : [{ field, message: issue.message ?? "is not valid" }];
      });
      return refuseFields(reply, errors);
    }
    if (isStoreUnavailable(error)) {
      // /readyz says why; the log has it too. Work resumes once the store takes writes (or, its file replaced, after a restart).
      request.log.error({ err: error }, "the store refused a write");
      void reply.header("retry-after", String(STORE_RETRY_AFTER_S));
      return sendProblem(reply, 503);
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
      return refuseFields(reply, errors);
    }
    if (error instanceof BodyRefusal) {
      return refuseFields(reply, [{ field: error.field, message: error.reason }]);
    }
    if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return sendProblem(reply, 415, `${request.headers["content-type"] === undefined ? "the body has no Content-Type" : "the body's Content-Type is not one this service reads"}; ${SEND_JSON}`);
    }
    if (!isResponseSerializationError(error) && typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500) {
      // Fastify's own refusals (a body too large, or not as long as its Content-Length said).
      return sendProblem(reply, error.statusCode, error.message);
    }
    request.log.error({ err: error }, "request failed");
    return sendProblem(reply, 500);
  });

  const routes = app.withTypeProvider<ZodTypeProvider>();

  routes.get("/healthz", { config: { public: true }, schema: { hide: true, response: { 200: health } } }, () => ({ status: "ok" }));
  // The store's probe writes (a full disk shows only then); anyone may call /readyz, so it probes at most once a second.
  let storeProbe: { at: number; result: ReturnType<Store["writable"]> } | undefined;
  const storeWritable = () => {
    if (storeProbe === undefined || performance.now() - storeProbe.at >= STORE_PROBE_INTERVAL_MS) {
      storeProbe = { at: performance.now(), result: deps.store.writable() };
    }
    return storeProbe.result;
  };
  routes.get("/readyz", { config: { public: true }, schema: { hide: true, response: { 200: health, 503: health } } }, (_request, reply) => {
    if (deps.ready?.() === false || !deps.registry.loaded()) {
      reply.code(503);
      return { status: "starting or stopping", engine: deps.engine.kind };
    }
    const writable = storeWritable();
    if (!writable.ok) {
      reply.code(503);
      return { status: "the store cannot be written", engine: deps.engine.kind, detail: writable.reason };
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
    (request) => {
      const { state, cursor } = request.query;
      const limit = request.query.limit ?? DEFAULT_LIST_LIMIT;
      const page = deps.manager.list(viewerOf(request), { ...(state === undefined ? {} : { state }), limit, ...(cursor === undefined ? {} : { after: cursor }) });
      const next = page.next === undefined ? undefined : `/v1/conferences?${new URLSearchParams({ ...(state === undefined ? {} : { state }), limit: String(limit), cursor: encodeCursor(page.next) }).toString()}`;
      return { conferences: page.conferences.map(viewOf), ...(next === undefined ? {} : { next }) };
    },
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
          429: streamRefusal("The token's subject has as many event streams open as one may (SWITCH_STREAMS_PER_SUBJECT); close one, or retry later"),
          503: streamRefusal("The service has as many event streams open as it serves (SWITCH_STREAMS_TOTAL); retry later"),
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
      if (hasEnded(deps.store, conference.id, after)) {
        return reply.code(204).send(null);
      }
      if (request.method === "HEAD") {
        // RFC 9110 §9.3.2: the head a GET would answer, without its content; a stream's content has no end to wait for.
        reply.sse.sendHeaders();
        reply.raw.end();
        return;
      }
      const subject = request.principal!.subject;
      const slot = streams.take(subject);
      if (slot === "subject" || slot === "total") {
        void reply.header("retry-after", String(STREAM_RETRY_AFTER_S));
        return slot === "subject"
          ? sendProblem(reply, 429, `${subject} has ${limits.SWITCH_STREAMS_PER_SUBJECT} event streams open, as many as one subject may; close one, or retry after ${STREAM_RETRY_AFTER_S} s`)
          : sendProblem(reply, 503, `the service has ${limits.SWITCH_STREAMS_TOTAL} event streams open, as many as it serves; retry after ${STREAM_RETRY_AFTER_S} s`);
      }
      // The connection's end gives the slot back, whether the stream ended or its client went.
      reply.raw.once("close", slot);
      try {
        if (!(await streamEvents(deps.store, conference, after, reply, closing.signal))) {
          return reply.code(204).send(null);
        }
      } finally {
        slot();
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

  await app.register(orphanStackRoutes(deps.orphans, deps.onBackgroundError ?? (() => undefined), problemResponses));

  return app;
}

/** Whether `field` ("participants.0.ip") starts with a key of the request's JSON body. */
function isBodyField(body: unknown, field: string): boolean {
  return typeof body === "object" && body !== null && !Array.isArray(body) && Object.hasOwn(body, field.split(".")[0]!);
}

/** An unknown key as a refusal quotes it: in part when long, so that a refusal is small whatever key was sent. */
function quotedKey(key: string): string {
  const characters = [...key];
  return characters.length <= QUOTED_KEY_LENGTH ? JSON.stringify(key) : `${JSON.stringify(characters.slice(0, QUOTED_KEY_LENGTH).join("")).slice(0, -1)}…" (${characters.length} characters)`;
}

/**
 * A body's JSON as Fastify's own parser reads it (a leading byte-order mark skipped), refused as a
 * field's problem when it is empty, not JSON, or holds a key that can replace a prototype.
 */
function parseJsonBody(text: string): unknown {
  const json = text.startsWith("\uFEFF") ? text.slice(1) : text;
  if (json === "") {
    throw new BodyRefusal("body", `is empty; send a JSON document, as Content-Type: ${BODY_MEDIA_TYPE} says`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new BodyRefusal("body", `is not valid JSON; send a JSON document, as Content-Type: ${BODY_MEDIA_TYPE} says`);
  }
  const found = prototypeKey(parsed);
  if (found !== undefined) {
    throw new BodyRefusal(found.field, `has ${found.key}, ${PROTOTYPE_KEY_REASON}`);
  }
  return parsed;
}

/** An object of a parsed body, with the key it is under and the object holding it (none for the body). */
interface BodyNode {
  value: object;
  depth: number;
  under?: { key: string; holder: BodyNode };
}

/**
 * The first key of a parsed body, breadth first, that can replace a prototype where the body is
 * merged — an own "__proto__", or an own "constructor" object holding "prototype": secure-json-parse's
 * rule, which Fastify's own parser applies (node_modules/secure-json-parse/index.js, `filter`) — and
 * the field of the object that holds it.
 */
function prototypeKey(body: unknown): { field: string; key: string } | undefined {
  let level: BodyNode[] = typeof body === "object" && body !== null ? [{ value: body, depth: 0 }] : [];
  while (level.length > 0) {
    const next: BodyNode[] = [];
    for (const node of level) {
      const constructor: unknown = Object.hasOwn(node.value, "constructor") ? (node.value as { constructor: unknown }).constructor : undefined;
      const key = Object.hasOwn(node.value, "__proto__")
        ? 'a "__proto__" key'
        : typeof constructor === "object" && constructor !== null && Object.hasOwn(constructor, "prototype")
          ? 'a "constructor" key holding "prototype"'
          : undefined;
      if (key !== undefined) {
        return { field: fieldOf(node), key };
      }
      for (const [childKey, child] of Object.entries(node.value)) {
        if (typeof child === "object" && child !== null) {
          next.push({ value: child as object, depth: node.depth + 1, under: { key: childKey, holder: node } });
        }
      }
    }
    level = next;
  }
  return undefined;
}

/** Where `node` is in the body ("body.participants.0"); "body" alone when that would be long or strange enough to be no field. */
function fieldOf(node: BodyNode): string {
  if (node.depth > MAX_NAMED_DEPTH) {
    return "body";
  }
  const keys: string[] = [];
  for (let at = node.under; at !== undefined; at = at.holder.under) {
    if (!NAMEABLE_KEY.test(at.key)) {
      return "body";
    }
    keys.unshift(at.key);
  }
  return ["body", ...keys].join(".");
}

/**
 * A 400 naming the fields refused, at most MAX_LISTED_ERRORS of them; the rest are counted under
 * the field they all lie in (10,000 bad participants would otherwise make a refusal larger than
 * the request).
 */
function refuseFields(reply: FastifyReply, errors: { field: string; message: string }[]): FastifyReply {
  const listed = errors.slice(0, MAX_LISTED_ERRORS);
  const omitted = errors.slice(MAX_LISTED_ERRORS);
  if (omitted.length > 0) {
    listed.push({ field: commonField(omitted.map((entry) => entry.field)), message: `has ${omitted.length} more ${omitted.length === 1 ? "error" : "errors"}, not listed; correct those listed and send it again to see them` });
  }
  return sendProblem(reply, 400, listed.map((entry) => `${entry.field} ${entry.message}`).join("; "), listed);
}

/** The field every one of `fields` lies in ("body.participants" for "body.participants.3.ip" and "body.participants.7"), at least the first's location. */
function commonField(fields: readonly string[]): string {
  const [first, ...rest] = fields.map((field) => field.split("."));
  let length = first!.length;
  for (const parts of rest) {
    let same = 0;
    while (same < length && parts[same] === first![same]) {
      same++;
    }
    length = same;
  }
  return first!.slice(0, Math.max(1, length)).join(".");
}

/**
 * A request as a log line shows it (a pino serializer, in place of Fastify's): its URL with the
 * values of the query's parameters redacted but for LOGGED_PARAMETERS', and LOGGED_HEADERS, which
 * REDACTED_PATHS then censors.
 */
function requestLogLine(request: { method?: string; url?: string; headers: IncomingHttpHeaders; socket?: { remoteAddress?: string; remotePort?: number } }) {
  const headers = Object.fromEntries(LOGGED_HEADERS.flatMap((name) => (request.headers[name] === undefined ? [] : [[name, request.headers[name]]])));
  return {
    method: request.method,
    url: request.url === undefined ? undefined : loggedUrl(request.url),
    headers,
    remoteAddress: request.socket?.remoteAddress,
    remotePort: request.socket?.remotePort,
  };
}

/** `url` with each query parameter's value "[redacted]" but LOGGED_PARAMETERS', and a name that could be a secret too. */
function loggedUrl(url: string): string {
  const at = url.indexOf("?");
  if (at === -1) {
    return url;
  }
  const parameters = url
    .slice(at + 1)
    .split("&")
    .map((parameter) => {
      const name = parameter.split("=", 1)[0]!;
      if (LOGGED_PARAMETERS.has(name)) {
        return parameter;
      }
      return LOGGABLE_NAME.test(name) ? `${name}=[redacted]` : "[redacted]";
    });
  return `${url.slice(0, at)}?${parameters.join("&")}`;
}

const REQUEST_LINE_REFUSAL = "the request line is not METHOD /path HTTP/1.1; send e.g. GET /healthz HTTP/1.1, its path percent-encoded, ending in CRLF";
const HEADER_REFUSAL = "a header is not Name: value, or holds a character a header may not (a control character, a space before the colon); send each header as Name: value, ending in CRLF";
const CONTENT_LENGTH_REFUSAL = "Content-Length is not one whole number of bytes; send it once, as the body's size";
const CHUNK_REFUSAL = "the chunked body is not well-formed; send each chunk as its size in hexadecimal, CRLF, its bytes and CRLF, and end with 0 CRLF CRLF";
/**
 * What a request Node's parser refuses is told, by llhttp's error code (the codes Node's parser
 * gives, https://github.com/nodejs/llhttp/blob/main/src/llhttp/constants.ts): what part of the
 * request is wrong, and how it is written.
 */
const PARSER_REFUSALS: Readonly<Record<string, string>> = {
  HPE_INVALID_METHOD: REQUEST_LINE_REFUSAL,
  HPE_INVALID_URL: REQUEST_LINE_REFUSAL,
  HPE_INVALID_VERSION: REQUEST_LINE_REFUSAL,
  // "Expected HTTP/": what follows the path is no version, as after a path with a space in it.
  HPE_INVALID_CONSTANT: REQUEST_LINE_REFUSAL,
  // HTTP/2's preface ("PRI * HTTP/2.0"): a version this service does not speak.
  HPE_PAUSED_H2_UPGRADE: REQUEST_LINE_REFUSAL,
  HPE_INVALID_HEADER_TOKEN: HEADER_REFUSAL,
  HPE_CR_EXPECTED: HEADER_REFUSAL,
  HPE_LF_EXPECTED: HEADER_REFUSAL,
  HPE_INVALID_CONTENT_LENGTH: CONTENT_LENGTH_REFUSAL,
  HPE_UNEXPECTED_CONTENT_LENGTH: CONTENT_LENGTH_REFUSAL,
  HPE_INVALID_TRANSFER_ENCODING: "Transfer-Encoding is not chunked, or comes with Content-Length; send a body with Content-Length or with Transfer-Encoding: chunked, not both",
  HPE_INVALID_CHUNK_SIZE: CHUNK_REFUSAL,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: CHUNK_REFUSAL,
};

/** What a refused connection is told: Node's refusals (lib/_http_server.js), as problems. */
function clientRefusal(code: string, requestTimeoutMs: number): [status: number, detail: string] {
  switch (code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return [408, `the request was not received in full within ${requestTimeoutMs} ms; send its head and body without pausing`];
    case "HPE_HEADER_OVERFLOW":
      return [431, `the request's head (its request line and headers) is larger than ${maxHeaderSize} bytes; send fewer or shorter headers, or a shorter URL`];
    default:
      return [400, PARSER_REFUSALS[code] ?? "the request is not well-formed HTTP/1.1; send a request line, headers as Name: value, each line ending in CRLF, then an empty line"];
  }
}

/**
 * A problem as Node writes it outside Fastify (a refused connection, an unmet Expect): whole, its
 * length given, and the connection closed after it, as what follows on it cannot be read.
 */
function closingProblem(status: number, detail: string): { headers: Record<string, string>; body: string } {
  const body = JSON.stringify(problemOf(status, detail));
  return { headers: { "Content-Type": "application/problem+json", "Content-Length": String(Buffer.byteLength(body)), Connection: "close" }, body };
}

/**
 * Event streams open now, per subject and in all, each within its cap. `take` answers the slot's
 * release (safe to call more than once), or which cap is reached.
 */
function streamSlots(perSubject: number, total: number): { take: (subject: string) => (() => void) | "subject" | "total" } {
  const open = new Map<string, number>();
  let all = 0;
  return {
    take: (subject) => {
      const mine = open.get(subject) ?? 0;
      if (mine >= perSubject) {
        return "subject";
      }
      if (all >= total) {
        return "total";
      }
      open.set(subject, mine + 1);
      all++;
      let released = false;
      return () => {
        if (released) {
          return;
        }
        released = true;
        all--;
        const left = open.get(subject)! - 1;
        if (left === 0) {
          open.delete(subject);
        } else {
          open.set(subject, left);
        }
      };
    },
  };
}

function viewerOf(request: FastifyRequest): { subject: string; admin: boolean } {
  return { subject: request.principal!.subject, admin: request.principal!.role === "admin" };
}

/** A conference as the API shows it: the record without the stack config (the decision says it). */
function viewOf(conference: ConferenceRecord): z.input<typeof conferenceView> {
  const { spec: _spec, ...view } = conference;
  return view;
}

function problemOf(status: number, detail?: string, errors?: Problem["errors"]): Problem {
  return {
    // RFC 9457 §4.2.1: "about:blank" — the status and its title say what happened; detail says why.
    type: "about:blank",
    title: TITLE_OF[status] ?? "Error",
    status,
    // 5xx bodies say nothing internal: the log has the error. A 503 is the service's own refusal (it is full), and says so.
    ...(detail === undefined || (status >= 500 && status !== 503) ? {} : { detail }),
    ...(errors === undefined ? {} : { errors }),
  };
}

function sendProblem(reply: FastifyReply, status: number, detail?: string, errors?: Problem["errors"]): FastifyReply {
  return reply.code(status).type("application/problem+json").serializer(JSON.stringify).send(problemOf(status, detail, errors));
}

/** Whether a stream of the conference's events after `after` would have nothing to send: it has ended, and `after` was its last event or later. */
function hasEnded(store: Store, conferenceId: string, after: number): boolean {
  return TERMINAL_STATES.includes(store.conference(conferenceId)!.state) && store.eventsAfter(conferenceName(conferenceId), after).length === 0;
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
    if (event.stack === conferenceName(conference.id)) {
      live.push(event);
      wake?.();
    }
  });
  let closed = closing.aborted;
  let markClosed: () => void = () => undefined;
  // A client that stops reading leaves a send waiting for a drain that never comes; its close ends the wait.
  const whenClosed = new Promise<void>((resolve) => (markClosed = resolve));
  const end = () => {
    closed = true;
    markClosed();
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
      await Promise.race([sse.send({ id: String(event.id), event: event.type, data: { ...event.data, at: event.at } }), whenClosed]);
      return event.type === "stopped" || event.type === "failed";
    };
    for (const event of store.eventsAfter(conferenceName(conference.id), after)) {
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
