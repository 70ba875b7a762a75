import type { FastifyHttpOptions, FastifyPluginAsync } from "fastify";
import { type Server, type ServerResponse, maxHeaderSize } from "node:http";
import type { Socket } from "node:net";
import type { ServiceLimits } from "../environment.ts";
import { TITLE_OF, problemOf, sendProblem } from "./problems.ts";
import fastifyPlugin from "fastify-plugin";

/**
 * Request hardening (STYLE.md 21): how long a request may take to arrive and how large it may be,
 * and what is said of a request that Node or the router refuses before any route sees it — a
 * problem like every other, never Node's empty answer. Some of this is the server's options, given
 * when the app is made; the rest is a plugin; the two share which response each connection has.
 */

/**
 * How many times per request timeout Node looks for requests past it (connectionsCheckingInterval,
 * https://nodejs.org/api/http.html#httpcreateserveroptions-requestlistener: 30 s by default, which
 * would let a 500 ms timeout run for 30 s): a stalled request is closed within 1¼ timeouts.
 */
const TIMEOUT_CHECKS = 4;
/** The longest interval between those checks, Node's own default. */
const MAX_CHECK_INTERVAL_MS = 30_000;

export interface RequestHardening {
  /** The server's options: Fastify applies them when it makes the app, so buildApp gives them to Fastify(). */
  options: Pick<FastifyHttpOptions<Server>, "bodyLimit" | "return503OnClosing" | "requestTimeout" | "http" | "clientErrorHandler" | "frameworkErrors">;
  /** What follows once the app is made: the Host and Expect refusals. */
  plugin: FastifyPluginAsync;
}

export function requestHardening(limits: ServiceLimits): RequestHardening {
  // The response a connection's latest request has, so that a refusal of the connection never lands inside it.
  const responses = new WeakMap<Socket, ServerResponse>();
  const requestTimeout = limits.SWITCH_REQUEST_TIMEOUT_MS;
  const options: RequestHardening["options"] = {
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
  };
  const plugin = fastifyPlugin(async (app) => {
    // Node answers an Expect header other than 100-continue with an empty 417 of its own unless this event is listened to.
    app.server.on("checkExpectation", (_request, response: ServerResponse) => {
      const { headers, body } = closingProblem(417, "the service meets no expectation but 100-continue; send no Expect header, or Expect: 100-continue");
      response.writeHead(417, headers).end(body);
    });
    // The first of the onRequest hooks, before authentication: a request without Host is refused whatever route it asks for.
    app.addHook("onRequest", async (request, reply) => {
      responses.set(request.raw.socket, reply.raw);
      if (request.raw.httpVersion === "1.1" && request.headers.host === undefined) {
        const message = "is missing; HTTP/1.1 requires one: send Host: <the service's host and port>";
        // As Node's own answer did: a client this far off is not one to keep talking to.
        void reply.header("connection", "close");
        return sendProblem(reply, 400, `headers.host ${message}`, [{ field: "headers.host", message }]);
      }
    });
  });
  return { options, plugin };
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
