import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from "fastify-type-provider-zod";
import { type DomainErrorCode, InvalidArgumentsError, isDomainError } from "../../../domain/errors.ts";
import { isStoreUnavailable } from "../../store/store.ts";
import { type Problem, problem } from "../schemas.ts";
import fastifyPlugin from "fastify-plugin";

/**
 * Problems (STYLE.md 14): every refusal the service answers is RFC 9457 problem details, mapped at
 * this one boundary — the error handler, from the domain's error codes (STATUS_OF) — and the routes
 * nobody has answer 404, or 405 with the methods the path has.
 */

/** The most errors a 400 lists: enough to correct a request by, few enough that a refusal stays small whatever was sent. */
export const MAX_LISTED_ERRORS = 20;
/** How much of an unknown key a refusal quotes, in characters: enough to find it by. */
const QUOTED_KEY_LENGTH = 40;
/** What a 503 for a store that refused a write asks a client to wait: the reconciler looks every 10 s. */
const STORE_RETRY_AFTER_S = 5;

const STATUS_OF: Readonly<Record<DomainErrorCode, number>> = {
  invalid_arguments: 400,
  not_found: 404,
  conflict: 409,
  exhausted: 409,
  solver_failed: 500,
};
export const TITLE_OF: Readonly<Record<number, string>> = {
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
export const problemBody = { description: "RFC 9457 problem details", content: { "application/problem+json": { schema: problem } } };
// 503: the store refused a write (locked by another process, a full disk, its file replaced); Retry-After says when to try again.
export const problemResponses = { 400: problemBody, 401: problemBody, 403: problemBody, 404: problemBody, 409: problemBody, 503: problemBody };

/** The one media type the service reads a body in: every route that takes a body takes JSON. */
export const BODY_MEDIA_TYPE = "application/json";
/** How a 415 says what to send. */
const SEND_JSON = `send the body as ${BODY_MEDIA_TYPE}, with Content-Type: ${BODY_MEDIA_TYPE}`;

/** A JSON body the service does not read, as a field's problem: the parser's refusal, which the error handler sends. */
export class BodyRefusal extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field} ${reason}`);
  }
}

export function problemOf(status: number, detail?: string, errors?: Problem["errors"]): Problem {
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

export function sendProblem(reply: FastifyReply, status: number, detail?: string, errors?: Problem["errors"]): FastifyReply {
  return reply.code(status).type("application/problem+json").serializer(JSON.stringify).send(problemOf(status, detail, errors));
}

/** The error handler, and 404 or 405 for a request no route answers; app-wide, so registered before every route. */
export const problems: FastifyPluginAsync = fastifyPlugin(async (app) => {
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
});

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
