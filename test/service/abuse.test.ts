import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readEnvironment } from "../../automation/service/environment.ts";
import { type TestService, problemOf, startTestService } from "../support/service.ts";
import { poll } from "../support/poll.ts";
import { EXCHANGE_WAIT_MS, exchange, head, parseResponse, responsesIn, statusLines } from "../support/raw-http.ts";

/**
 * What a client can make the service hold or say, bounded (issue 15, "Nothing unbounded"): a
 * request whose body never comes, event streams one token opens by the hundred, a refusal that
 * quotes every one of 10,000 participants, a HEAD of a stream, a token in a query string or in
 * two Authorization headers. Each is driven over a real socket on 127.0.0.1, most of them raw,
 * as a client that does not play along would send them.
 */

const LJUBLJANA = { participants: [{ lat: 46.05, lon: 14.51 }] };
/** The request timeout of the service these tests share: short, so that the bound shows in a test. */
const REQUEST_TIMEOUT_MS = 500;
/** The caps the stream tests' service is given. */
const STREAMS_PER_SUBJECT = 3;
const STREAMS_TOTAL = 5;

/** The service of every test but the stream caps': a short request timeout, and a log to read. */
let service: TestService;
beforeAll(async () => {
  service = await startTestService({ env: { SWITCH_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS), SWITCH_LOG_LEVEL: "info" } });
}, 60_000);
afterAll(() => service?.close());

describe("a request whose body never comes", () => {
  it("is answered 408 and its connection closed, with a token or without, as is a head that never ends", async () => {
    const post = (headers: [string, string][]) => head("POST", "/v1/conferences", [["Content-Type", "application/json"], ["Content-Length", "64"], ...headers]);
    const stalls = {
      "headers, a token and part of the body": `${post([["Authorization", `Bearer ${service.tokens.alice}`]])}{"participants"`,
      "headers and a token, no body": post([["Authorization", `Bearer ${service.tokens.alice}`]]),
      "headers without a token, no body": post([]),
      "half a head": "POST /v1/conferences HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le",
    };
    // Several of each at once: one stalled client must not be all it takes.
    const exchanges = await Promise.all(Object.entries(stalls).flatMap(([what, bytes]) => Array.from({ length: 3 }, async () => ({ what, ...(await exchange(service, bytes)) }))));
    for (const { what, text, closed } of exchanges) {
      expect(closed, `${what}: still open after ${EXCHANGE_WAIT_MS} ms`).toBe(true);
      // Without a token the refusal comes first, before the body is awaited; the timeout still ends the connection.
      expect(statusLines(text).at(-1), what).toMatch(/^HTTP\/1\.1 408 /);
      const timeout = parseResponse(responsesIn(text).at(-1)!);
      expect(timeout.headers["content-type"], what).toBe("application/problem+json");
      expect(JSON.parse(timeout.body)).toEqual({
        type: "about:blank",
        title: "Request Timeout",
        status: 408,
        detail: `the request was not received in full within ${REQUEST_TIMEOUT_MS} ms; send its head and body without pausing`,
      });
    }
  });

  it("is not what the timeout ends when the body comes, nor an event stream that runs past it", async () => {
    const { id } = await service.create(LJUBLJANA);
    await service.waitForConference(id, ["ready"]);
    const streaming = service.stream(id);
    const body = JSON.stringify(LJUBLJANA);
    const prompt = await exchange(
      service,
      `${head("POST", "/v1/placements", [
        ["Authorization", `Bearer ${service.tokens.alice}`],
        ["Content-Type", "application/json"],
        ["Content-Length", String(body.length)],
        ["Connection", "close"],
      ])}${body}`,
    );
    expect(statusLines(prompt.text)).toEqual(["HTTP/1.1 200 OK"]);
    // The stream was asked for before these waits and outlives several timeouts.
    await delay(4 * REQUEST_TIMEOUT_MS);
    await service.stop(id);
    const stream = await streaming;
    expect(stream.status).toBe(200);
    expect(stream.events.map((event) => event.event)).toContain("stopped");
  });
});

describe("event streams", () => {
  /** Its own service: the streams it opens stay open until its end. */
  let capped: TestService;
  let alices: string;
  const open: AbortController[] = [];

  beforeAll(async () => {
    capped = await startTestService({ env: { SWITCH_STREAMS_PER_SUBJECT: String(STREAMS_PER_SUBJECT), SWITCH_STREAMS_TOTAL: String(STREAMS_TOTAL) } });
    // A conference that stays alive: its streams run until the test closes them.
    alices = (await capped.create(LJUBLJANA)).id;
    await capped.waitForConference(alices, ["ready"]);
  }, 60_000);
  afterAll(async () => {
    for (const controller of open) {
      controller.abort();
    }
    await capped?.close();
  });

  /** Asks for alice's conference's stream; a stream that opens stays open (unread) until its controller aborts it. */
  async function ask(token: string): Promise<{ response: Response; controller: AbortController }> {
    const controller = new AbortController();
    open.push(controller);
    const response = await capped.call(`/v1/conferences/${alices}/events`, { token, headers: { accept: "text/event-stream" }, signal: controller.signal });
    return { response, controller };
  }

  it("are capped per token's subject (429) and overall (503), each with Retry-After, and a closed one frees its slot", async () => {
    const { alice, admin } = capped.tokens;
    // Asked for at once, as a client that opens hundreds would: exactly the cap's worth open.
    const asked = await Promise.all(Array.from({ length: STREAMS_PER_SUBJECT + 2 }, () => ask(alice)));
    const opened = asked.filter(({ response }) => response.status === 200);
    expect(opened).toHaveLength(STREAMS_PER_SUBJECT);
    for (const { response } of opened) {
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    }
    for (const { response } of asked.filter((each) => !opened.includes(each))) {
      expect(response.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
      expect((await problemOf(response, 429)).detail).toBe(
        `alice has ${STREAMS_PER_SUBJECT} event streams open, as many as one subject may; close one, or retry after ${response.headers.get("retry-after")} s`,
      );
    }

    // Another subject still gets its own, up to the service's total.
    for (let index = STREAMS_PER_SUBJECT; index < STREAMS_TOTAL; index++) {
      expect((await ask(admin)).response.status).toBe(200);
    }
    const full = await ask(admin);
    expect(full.response.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    expect((await problemOf(full.response, 503)).detail).toBe(
      `the service has ${STREAMS_TOTAL} event streams open, as many as it serves; retry after ${full.response.headers.get("retry-after")} s`,
    );

    // A refusal took no slot; closing a stream gives one back, once the service sees it closed.
    opened[0]!.controller.abort();
    const again = await poll(
      "closing one of alice's streams did not free a slot",
      async () => {
        const { response } = await ask(alice);
        if (!response.ok) {
          await response.body?.cancel();
        }
        return response;
      },
      (response) => response.status === 200,
      EXCHANGE_WAIT_MS,
    );
    expect(again.headers.get("content-type")).toMatch(/^text\/event-stream/);
  });

  it("are documented: 429 and 503 problems with Retry-After", async () => {
    const document = (await (await capped.call("/openapi.json")).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }> }>>;
    };
    const responses = document.paths["/v1/conferences/{id}/events"]!.get!.responses;
    for (const status of ["429", "503"]) {
      expect(Object.keys(responses[status]?.content ?? {}), status).toEqual(["application/problem+json"]);
      expect(Object.keys(responses[status]?.headers ?? {}), status).toEqual(["retry-after"]);
    }
  });
});

describe("the problems of a request", () => {
  it("list a bounded number of its errors and say how many more there were", async () => {
    const participants = Array.from({ length: 10_000 }, (_, index) => ({ ip: `10.${index >> 8}.${index & 255}.1` }));
    const body = JSON.stringify({ participants });
    const response = await service.call("/v1/conferences", { method: "POST", body });
    const text = await response.clone().text();
    const refused = await problemOf(response, 400);
    // 20 errors of ~100 bytes each, twice (detail and errors): a few kilobytes, whatever the request's size.
    expect(Buffer.byteLength(text)).toBeLessThan(8 * 1024);
    expect(refused.errors).toHaveLength(21);
    expect(refused.errors!.slice(0, 20).map((entry) => entry.field)).toEqual(participants.slice(0, 20).map((_, index) => `body.participants.${index}.ip`));
    expect(refused.errors![20]).toEqual({ field: "body.participants", message: "has 9980 more errors, not listed; correct those listed and send it again to see them" });
    expect(refused.detail).toBe(refused.errors!.map((entry) => `${entry.field} ${entry.message}`).join("; "));
    expect(refused.detail).toMatch(/; body\.participants has 9980 more errors, not listed; correct those listed and send it again to see them$/);
    // The same bound holds where the schema refuses them.
    const invalid = await problemOf(await service.call("/v1/placements", { method: "POST", body: JSON.stringify({ participants: participants.map(() => ({ ip: "not an address" })) }) }), 400);
    expect(invalid.errors).toHaveLength(21);
    expect(invalid.errors![20]).toEqual({ field: "body.participants", message: "has 9980 more errors, not listed; correct those listed and send it again to see them" });
  });

  it("quote an unknown key only in part: a refusal is no larger for a larger key", async () => {
    const key = "k".repeat(100_000);
    const refused = await problemOf(await service.call("/v1/placements", { method: "POST", body: JSON.stringify({ ...LJUBLJANA, [key]: 1 }) }), 400);
    expect(refused.errors).toEqual([{ field: "body", message: `has an unknown key "${"k".repeat(40)}…" (100000 characters); remove it or correct its spelling` }]);
  });
});

describe("HEAD of an event stream", () => {
  it("answers the head a GET would, without a body, and a request pipelined behind it is answered too", async () => {
    const { id } = await service.create(LJUBLJANA);
    await service.waitForConference(id, ["ready"]);
    const auth: [string, string] = ["Authorization", `Bearer ${service.tokens.alice}`];
    const { text, closed } = await exchange(
      service,
      head("HEAD", `/v1/conferences/${id}/events`, [auth, ["Accept", "text/event-stream"]]) +
        head("HEAD", `/v1/conferences/${id}/events`, [["Authorization", `Bearer ${service.tokens.bob}`]]) +
        head("GET", "/healthz", [["Connection", "close"]]),
    );
    expect(closed).toBe(true);
    expect(statusLines(text)).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"]);
    const [stream, hidden, health] = responsesIn(text);
    expect(stream).toMatch(/\r\ncontent-type: text\/event-stream\r\n/i);
    expect(stream!.endsWith("\r\n\r\n")).toBe(true);
    expect(hidden).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(hidden!.endsWith("\r\n\r\n")).toBe(true);
    expect(health!.endsWith('{"status":"ok"}')).toBe(true);

    // An ended conference whose every event was seen: 204, as its GET answers.
    await service.stop(id);
    await service.waitForConference(id, ["stopped"]);
    const { events } = await service.stream(id);
    const ended = await service.call(`/v1/conferences/${id}/events`, { method: "HEAD", headers: { "last-event-id": events.at(-1)!.id }, signal: AbortSignal.timeout(EXCHANGE_WAIT_MS) });
    expect(ended.status).toBe(204);
  });
});

describe("two Authorization headers", () => {
  it("are refused with a problem naming the header, whichever comes first", async () => {
    const { alice, bob } = service.tokens;
    for (const [first, second] of [
      [alice, bob],
      [alice, alice],
      ["not-a-token", alice],
    ]) {
      const { text, closed } = await exchange(
        service,
        head("GET", "/v1/clusters", [
          ["Authorization", `Bearer ${first}`],
          ["authorization", `Bearer ${second}`],
          ["Connection", "close"],
        ]),
      );
      expect(closed).toBe(true);
      expect(statusLines(text)).toEqual(["HTTP/1.1 400 Bad Request"]);
      const refusal = parseResponse(text);
      expect(refusal.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(refusal.body)).toEqual({
        type: "about:blank",
        title: "Bad Request",
        status: 400,
        detail: "headers.authorization is given 2 times; send one Authorization header",
        errors: [{ field: "headers.authorization", message: "is given 2 times; send one Authorization header" }],
      });
    }
    // One header, the same token: taken.
    const { text } = await exchange(service, head("GET", "/v1/clusters", [["Authorization", `Bearer ${alice}`], ["Connection", "close"]]));
    expect(statusLines(text)).toEqual(["HTTP/1.1 200 OK"]);
  });
});

describe("the bounds' configuration", () => {
  it("defaults to the documented bounds and refuses a bound that is none, naming the variable and the fix", () => {
    expect(readEnvironment({})).toMatchObject({ SWITCH_REQUEST_TIMEOUT_MS: 30_000, SWITCH_STREAMS_PER_SUBJECT: 20, SWITCH_STREAMS_TOTAL: 1000 });
    expect(readEnvironment({ SWITCH_REQUEST_TIMEOUT_MS: "1500", SWITCH_STREAMS_PER_SUBJECT: "2", SWITCH_STREAMS_TOTAL: "9" })).toMatchObject({
      SWITCH_REQUEST_TIMEOUT_MS: 1500,
      SWITCH_STREAMS_PER_SUBJECT: 2,
      SWITCH_STREAMS_TOTAL: 9,
    });
    for (const [env, message] of [
      [{ SWITCH_REQUEST_TIMEOUT_MS: "0" }, "SWITCH_REQUEST_TIMEOUT_MS is below 100 ms, too short for a request to arrive; give e.g. 30000"],
      [{ SWITCH_REQUEST_TIMEOUT_MS: "1e9" }, "SWITCH_REQUEST_TIMEOUT_MS is above 600000 (10 minutes); give e.g. 30000"],
      [{ SWITCH_REQUEST_TIMEOUT_MS: "2.5" }, "SWITCH_REQUEST_TIMEOUT_MS is not a whole number of milliseconds; give e.g. 30000"],
      [{ SWITCH_STREAMS_PER_SUBJECT: "0" }, "SWITCH_STREAMS_PER_SUBJECT is below 1; give the most event streams to hold open, e.g. 20"],
      [{ SWITCH_STREAMS_TOTAL: "many" }, "SWITCH_STREAMS_TOTAL must be a number"],
    ] as const) {
      expect(() => readEnvironment(env), message).toThrow(message);
    }
  });
});

// Last, so that what it scans is every line the file's requests made.
describe("what the log keeps of a request", () => {
  /** The "incoming request" lines of the log whose URL starts with `path`, parsed. */
  function incoming(path: string): { req: { url: string; headers?: Record<string, string> } }[] {
    return service.logs
      .map((line) => JSON.parse(line) as { msg: string; req?: { url: string; headers?: Record<string, string> } })
      .filter((line) => line.msg === "incoming request" && line.req?.url.startsWith(path) === true)
      .map((line) => ({ req: line.req! }));
  }

  it("logs the Authorization and Idempotency-Key headers as [redacted], never their values", async () => {
    const key = "idem-secret-7f3a9c";
    await service.create(LJUBLJANA, { key });
    const lines = incoming("/v1/conferences").filter((line) => line.req.headers?.["idempotency-key"] !== undefined);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.req.headers).toMatchObject({ authorization: "[redacted]", "idempotency-key": "[redacted]", "content-type": "application/json" });
    for (const line of service.logs) {
      expect(line).not.toContain(service.tokens.alice);
      expect(line).not.toContain(key);
    }
  });

  it("logs a query string's values as [redacted] but for the list's own parameters: a token sent as ?access_token= is in no line", async () => {
    const token = service.tokens.bob;
    const refused = await service.call(`/v1/clusters?access_token=${token}&limit=7`, { token: null });
    expect(refused.status).toBe(401);
    const listed = await service.call("/v1/conferences?state=ready&limit=2&sig=abc123");
    expect(listed.status).toBe(400);
    expect(incoming("/v1/clusters?").map((line) => line.req.url)).toEqual(["/v1/clusters?access_token=[redacted]&limit=7"]);
    expect(incoming("/v1/conferences?").map((line) => line.req.url)).toEqual(["/v1/conferences?state=ready&limit=2&sig=[redacted]"]);
    for (const line of service.logs) {
      expect(line).not.toContain(token);
      expect(line).not.toContain("abc123");
    }
  });
});
