import type { FastifyServerOptions } from "fastify";
import type { IncomingHttpHeaders } from "node:http";
import { listQuery } from "../schemas.ts";

/**
 * What a request's log line holds: enough to tell one client and request from another, and no
 * secret — the values of the headers and query parameters that may hold one are redacted.
 */

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

/** The app's logger: pino with `given`'s options, or none; requests logged as requestLogLine shows them, secrets redacted whatever is given. */
export function requestLogger(given: FastifyServerOptions["logger"]): FastifyServerOptions["logger"] {
  if (given === undefined || given === false) {
    return false;
  }
  const options = typeof given === "object" ? given : {};
  return { ...options, serializers: { ...options.serializers, req: requestLogLine }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };
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
