import Database from "better-sqlite3";
import { createHash } from "node:crypto";
import { maxHeaderSize } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from "../../automation/service/schemas.ts";
import { CONFERENCE_STATES } from "../../domain/conference-lifecycle.ts";
import { exchange, head, parseResponse, responsesIn } from "../support/raw-http.ts";
import { type TestService, problemOf, startTestService } from "../support/service.ts";

/**
 * What the service says to a request it refuses, as a new user met it (issue 16): every refusal a
 * problem (RFC 9457) that names what is wrong and how to fix it — a body with a prototype key, a
 * body of a media type it does not read, an empty query parameter, a request Node's HTTP parser
 * refuses before the app sees it — and a retry that only spells out the defaults is the request it
 * retries. Driven over real HTTP on 127.0.0.1; what fetch cannot send, over a raw socket.
 */

const LJUBLJANA = { lat: 46.05, lon: 14.51 };
const KEY_REUSED = (id: string) => `the Idempotency-Key was used for another request (conference ${id}); use a new key for a new conference`;
const PROTO_REFUSAL = 'has a "__proto__" key, which is not allowed: it can replace the prototype of an object it is merged into; remove it';
const CONSTRUCTOR_REFUSAL = 'has a "constructor" key holding "prototype", which is not allowed: it can replace the prototype of an object it is merged into; remove it';
const SEND_JSON = "send the body as application/json, with Content-Type: application/json";

let service: TestService;
beforeAll(async () => {
  service = await startTestService();
}, 60_000);
afterAll(() => service?.close());

/** POSTs `text` as it is to a route that reads a body, with alice's token. */
const post = (path: string, text: string, headers: Record<string, string> = {}) => service.call(path, { method: "POST", body: text, headers });

describe("a JSON body with a prototype key", () => {
  it.each([
    ["at the top", `{"__proto__": {"x": 1}, "participants": [${JSON.stringify(LJUBLJANA)}]}`, "body", PROTO_REFUSAL],
    ["escaped, as JSON may spell it", `{"\\u005f_proto__": {}, "participants": [${JSON.stringify(LJUBLJANA)}]}`, "body", PROTO_REFUSAL],
    ["in a participant", `{"participants": [{"lat": 46.05, "lon": 14.51, "__proto__": {"x": 1}}]}`, "body.participants.0", PROTO_REFUSAL],
    ["as constructor.prototype", `{"participants": [${JSON.stringify(LJUBLJANA)}], "constructor": {"prototype": {"x": 1}}}`, "body", CONSTRUCTOR_REFUSAL],
  ])("is refused %s with a 400 naming the key, not as invalid JSON", async (_where, text, field, message) => {
    for (const path of ["/v1/conferences", "/v1/placements"]) {
      const refused = await problemOf(await post(path, text), 400);
      expect(refused.errors, path).toEqual([{ field, message }]);
      expect(refused.detail, path).toBe(`${field} ${message}`);
    }
  });

  it("is told apart from a key named constructor that holds no prototype (an unknown key), and from JSON that is not JSON", async () => {
    const unknown = await problemOf(await post("/v1/placements", `{"participants": [${JSON.stringify(LJUBLJANA)}], "constructor": "x"}`), 400);
    expect(unknown.errors).toEqual([{ field: "body", message: 'has an unknown key "constructor"; remove it or correct its spelling' }]);
    const invalid = await problemOf(await post("/v1/placements", '{"participants": ['), 400);
    expect(invalid.errors).toEqual([{ field: "body", message: "is not valid JSON; send a JSON document, as Content-Type: application/json says" }]);
    const empty = await problemOf(await post("/v1/placements", ""), 400);
    expect(empty.errors).toEqual([{ field: "body", message: "is empty; send a JSON document, as Content-Type: application/json says" }]);
    // A byte-order mark before the document is no refusal, as with Fastify's own parser.
    expect((await post("/v1/placements", `\uFEFF{"participants": [${JSON.stringify(LJUBLJANA)}]}`)).status).toBe(200);
  });
});

describe("a body of a media type the service does not read", () => {
  it("is answered 415 naming the media type to send", async () => {
    for (const path of ["/v1/conferences", "/v1/placements"]) {
      const refused = await problemOf(await post(path, "<participants/>", { "content-type": "application/xml" }), 415);
      expect(refused, path).toEqual({ type: "about:blank", title: "Unsupported Media Type", status: 415, detail: `the body's Content-Type is not one this service reads; ${SEND_JSON}` });
    }
  });

  it("is answered 415 naming the media type to send when it has no Content-Type at all", async () => {
    const body = JSON.stringify({ participants: [LJUBLJANA] });
    const { text } = await exchange(
      service,
      head("POST", "/v1/placements", [
        ["Authorization", `Bearer ${service.tokens.alice}`],
        ["Content-Length", String(body.length)],
        ["Connection", "close"],
      ]) + body,
    );
    const response = parseResponse(responsesIn(text)[0]!);
    expect(response.status).toBe(415);
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(response.body)).toEqual({ type: "about:blank", title: "Unsupported Media Type", status: 415, detail: `the body has no Content-Type; ${SEND_JSON}` });
  });
});

describe("an empty query parameter", () => {
  const LIMIT_FIX = `give a whole number from 1 to ${MAX_LIST_LIMIT}, or leave limit out for ${DEFAULT_LIST_LIMIT}`;
  it.each([
    ["limit=", "limit", `is empty; ${LIMIT_FIX}`],
    ["limit=%20", "limit", `is empty; ${LIMIT_FIX}`],
    ["limit", "limit", `is empty; ${LIMIT_FIX}`],
    ["state=", "state", `is empty; use one of ${CONFERENCE_STATES.join(", ")}, or leave state out for every state`],
    ["cursor=", "cursor", "is empty; follow the `next` link of the page before, or leave cursor out for the first page"],
  ])("?%s is refused as empty, saying what it takes", async (query, parameter, message) => {
    const refused = await problemOf(await service.call(`/v1/conferences?${query}`), 400);
    expect(refused.errors).toEqual([{ field: `querystring.${parameter}`, message }]);
  });

  it.each([
    ["limit=0", `is below 1; ${LIMIT_FIX}`],
    [`limit=${MAX_LIST_LIMIT + 1}`, `is above ${MAX_LIST_LIMIT}; ${LIMIT_FIX}`],
    ["limit=2.5", `is not a whole number; ${LIMIT_FIX}`],
    ["limit=ten", `must be a number; ${LIMIT_FIX}`],
    ["limit=1&limit=2", "is given 2 times; give it once"],
  ])("?%s is refused for what it is, saying what limit takes", async (query, message) => {
    const refused = await problemOf(await service.call(`/v1/conferences?${query}`), 400);
    expect(refused.errors).toEqual([{ field: "querystring.limit", message }]);
  });

  it("is no refusal when given: a list answers ?limit=1&state=ready", async () => {
    expect((await service.call("/v1/conferences?limit=1&state=ready")).status).toBe(200);
  });
});

describe("a request Node's HTTP parser refuses", () => {
  const REQUEST_LINE = "the request line is not METHOD /path HTTP/1.1; send e.g. GET /healthz HTTP/1.1, its path percent-encoded, ending in CRLF";
  const HEADER_LINE = "a header is not Name: value, or holds a character a header may not (a control character, a space before the colon); send each header as Name: value, ending in CRLF";
  const TITLES: Record<number, string> = { 400: "Bad Request", 417: "Expectation Failed", 431: "Request Header Fields Too Large" };

  it.each([
    ["a header line without a colon", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, HEADER_LINE],
    ["a control character in a header's value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n", 400, HEADER_LINE],
    ["a request line that is none", "GARBAGE\r\n\r\n", 400, REQUEST_LINE],
    ["an HTTP version there is not", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, REQUEST_LINE],
    ["a space in the path", "GET /health z HTTP/1.1\r\nHost: x\r\n\r\n", 400, REQUEST_LINE],
    ["two Content-Lengths", "POST /v1/placements HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "Content-Length is not one whole number of bytes; send it once, as the body's size"],
    [
      "Content-Length with Transfer-Encoding",
      "POST /v1/placements HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400,
      "Transfer-Encoding is not chunked, or comes with Content-Length; send a body with Content-Length or with Transfer-Encoding: chunked, not both",
    ],
    [
      "a head larger than Node reads",
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Note: ${"a".repeat(maxHeaderSize)}\r\n\r\n`,
      431,
      `the request's head (its request line and headers) is larger than ${maxHeaderSize} bytes; send fewer or shorter headers, or a shorter URL`,
    ],
    ["no Host header", "GET /healthz HTTP/1.1\r\n\r\n", 400, "headers.host is missing; HTTP/1.1 requires one: send Host: <the service's host and port>"],
    [
      "an Expect header the service cannot meet",
      "GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n",
      417,
      "the service meets no expectation but 100-continue; send no Expect header, or Expect: 100-continue",
    ],
  ])("%s: a problem with Content-Length, and the connection closed", async (_what, bytes, status, detail) => {
    const { text, closed } = await exchange(service, bytes);
    expect(closed).toBe(true);
    const responses = responsesIn(text);
    expect(responses).toHaveLength(1);
    const response = parseResponse(responses[0]!);
    expect(response.status, text).toBe(status);
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(response.headers["content-length"]).toBe(String(Buffer.byteLength(response.body, "latin1")));
    expect(response.headers.connection).toBe("close");
    const problem = JSON.parse(response.body) as unknown;
    expect(problem).toMatchObject({ type: "about:blank", title: TITLES[status], status, detail });
  });

  it("names the missing Host header as a field, as every 400 of the app does", async () => {
    const { text } = await exchange(service, "GET /healthz HTTP/1.1\r\n\r\n");
    expect(JSON.parse(parseResponse(responsesIn(text)[0]!).body)).toEqual({
      type: "about:blank",
      title: "Bad Request",
      status: 400,
      detail: "headers.host is missing; HTTP/1.1 requires one: send Host: <the service's host and port>",
      errors: [{ field: "headers.host", message: "is missing; HTTP/1.1 requires one: send Host: <the service's host and port>" }],
    });
    // HTTP/1.0 has no Host header to require.
    const { text: old } = await exchange(service, "GET /healthz HTTP/1.0\r\n\r\n");
    expect(parseResponse(responsesIn(old)[0]!).status).toBe(200);
  });
});

describe("an Idempotency-Key repeated", () => {
  /** POSTs a create with `key`, answering the status and the conference's id or the problem's detail. */
  async function createWith(key: string, body: unknown): Promise<{ status: number; id?: string; detail?: string }> {
    const response = await service.call("/v1/conferences", { method: "POST", body: JSON.stringify(body), headers: { "idempotency-key": key } });
    if (response.status === 202) {
      return { status: 202, id: ((await response.json()) as { id: string }).id };
    }
    return { status: response.status, detail: (await problemOf(response, response.status)).detail };
  }
  const bare = { participants: [LJUBLJANA] };
  const spelledOut = { objective: "mean", simulcast: true, lastN: -1, expectedParticipants: 1, participants: [{ lon: LJUBLJANA.lon, lat: LJUBLJANA.lat }] };

  it.each([
    ["without defaults, then with them spelled out", "defaults-1", bare, spelledOut],
    ["with defaults spelled out, then without", "defaults-2", spelledOut, bare],
  ])("%s, is the same request: the same conference", async (_order, key, first, retry) => {
    const created = await createWith(key, first);
    expect(created.status).toBe(202);
    expect(await createWith(key, retry)).toEqual({ status: 202, id: created.id });
    expect(await createWith(key, first)).toEqual({ status: 202, id: created.id });
  });

  it.each([
    ["lastN", { lastN: 4 }],
    ["simulcast", { simulcast: false }],
    ["expectedParticipants", { expectedParticipants: 2 }],
    ["objective", { objective: "p95" }],
  ])("with another %s than the default, is another request: 409", async (field, change) => {
    const key = `defaults-differ-${field}`;
    const created = await createWith(key, bare);
    expect(created.status).toBe(202);
    expect(await createWith(key, { ...bare, ...change })).toEqual({ status: 409, detail: KEY_REUSED(created.id!) });
    // Control: the key still answers its own request.
    expect(await createWith(key, spelledOut)).toEqual({ status: 202, id: created.id });
  });

  it("recorded before fingerprints were canonical, still answers the request as it was sent then", async () => {
    const body = { participants: [LJUBLJANA], lastN: 3 };
    const created = await createWith("recorded-before", body);
    expect(created.status).toBe(202);
    // What a service before issue 16 recorded: the digest of the parsed body as sent, defaults left out.
    const database = new Database(join(service.dataDir, "switch.db"));
    try {
      database.prepare("UPDATE conferences SET request_hash = ? WHERE id = ?").run(createHash("sha256").update(JSON.stringify(body)).digest("hex"), created.id);
    } finally {
      database.close();
    }
    expect(await createWith("recorded-before", body)).toEqual({ status: 202, id: created.id });
    // Its digest says nothing of defaults: the same request with them spelled out is compared as it was before.
    expect(await createWith("recorded-before", { ...body, simulcast: true })).toEqual({ status: 409, detail: KEY_REUSED(created.id!) });
  });
});

describe("a store file that is not a database", () => {
  it("refuses the start, naming the file and the fix", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-corrupt-"));
    const path = join(dataDir, "switch.db");
    writeFileSync(path, "this is not a SQLite database ".repeat(200));
    await expect(startTestService({ dataDir })).rejects.toThrow(
      `${path} is not a SQLite database, or is damaged: restore it from a backup, or move it aside (with its -wal and -shm files) to start with an empty store; the conference stacks it tracked stay in the backend and are listed as orphans at GET /v1/orphan-stacks`,
    );
  });
});
