import fc from "fast-check";
import { isDeepStrictEqual } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConferenceRequest, withDefaults } from "../../automation/service/conferences.ts";
import { clusterList, conferenceList, conferenceRequest, conferenceView, createdView, health } from "../../automation/service/schemas.ts";
import { CONFERENCE_STATES } from "../../domain/conference-lifecycle.ts";
import { decisionRecord } from "../../domain/records.ts";
import { DEFAULT_SITES, parseSites } from "../../domain/contracts/testbed.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";
import { type Capacity, ROOMY, type StreamedEvent, type TestService, problemOf, startTestService, testbedOf } from "../support/service.ts";
import type { Problem } from "../../automation/service/schemas.ts";

/**
 * Every route fuzzed through real HTTP with fast-check: arbitrary JSON bodies and near-valid ones
 * (a valid request with one field broken), arbitrary ids, query strings and headers. Whatever is
 * sent, the service answers below 500; every refusal is a problem (RFC 9457) whose status is the
 * HTTP status, whose 400s name the fields they refuse where the request has them, and whose words
 * are the service's own — never zod's defaults, never a stack trace. Valid requests are accepted:
 * on a testbed no fuzzing fills, a 409 is only ever a conference no node could hold, or an
 * Idempotency-Key used before for another request, and nine in ten valid requests are taken.
 * Schemathesis (schemathesis.test.ts) checks the same API against its OpenAPI document.
 */

/** Runs per property and route it covers: a few hundred requests per route. */
const RUNS = 250;
/** No request of these waits longer: a stall fails its run instead of the file's timeout. */
const REQUEST_TIMEOUT_MS = 10_000;
const PROPERTY_TIMEOUT_MS = 120_000;

/** zod's default texts (v4 and v3): none may reach a user. */
const ZOD_DEFAULTS = /Invalid input|Invalid (option|string|enum|union|element|key|value|type)\b|Too (small|big)|Unrecognized key|\bRequired\b|[Ee]xpected \w+, received/;
/** A line of a JavaScript stack trace. */
const STACK_FRAME = /\n\s+at \S/;
const LOCATIONS = ["body", "querystring", "params", "headers", "path"] as const;

const GIBIBYTE = 1024 ** 3;

/** Of the valid creates and placements a property sent, how many were taken: most must be. */
interface Tally {
  sent: number;
  taken: number;
}
const MIN_TAKEN_SHARE = 0.9;
const shareOf = (tally: Tally) => (tally.sent === 0 ? 0 : tally.taken / tally.sent);

const NO_ROOM = /^no cluster has room for a conference of (\S+) CPU and (\S+) memory \(/;
const KEY_REUSED = /^the Idempotency-Key was used for another request \(conference [a-z0-9]+\); use a new key for a new conference$/;

/**
 * Why a 409 is not one the request explains on a testbed whose nodes are `capacity`'s (undefined
 * when it is): "no cluster has room" only for a conference larger than a node — the testbed never
 * fills — and a reused Idempotency-Key only where the request has one.
 */
function unexplained409(sent: Sent, detail: string | undefined, capacity: Capacity): string | undefined {
  const size = NO_ROOM.exec(detail ?? "");
  if (size !== null) {
    const larger = parseCpuMillicores(size[1]!)! > capacity.vcpuPerNode * 1000 || parseMemoryBytes(size[2]!)! > capacity.memoryGiBPerNode * GIBIBYTE;
    return larger ? undefined : `a node holds ${size[1]} CPU and ${size[2]}, so the testbed was full: ${detail}`;
  }
  if (KEY_REUSED.test(detail ?? "") && sent.headers?.["idempotency-key"] !== undefined) {
    return undefined;
  }
  return `nothing in the request explains it: ${detail}`;
}

let service: TestService;
/** A conference of alice's, stopped: its stream ends, and these are its events. */
let stopped: { id: string; events: StreamedEvent[] };
/** A conference of alice's that runs. */
let running: string;

beforeAll(async () => {
  // The thousand-odd conferences this file creates take a sliver of this testbed: none of its 409s can be for a testbed that filled up.
  service = await startTestService({ env: { SWITCH_TESTBED: testbedOf(ROOMY) } });
  const first = await service.create({ participants: [{ lat: 46.05, lon: 14.51 }] });
  const second = await service.create({ participants: [{ ip: "193.2.1.66" }] });
  await service.waitForConference(first.id, ["ready"]);
  await service.stop(first.id);
  await service.waitForConference(first.id, ["stopped"]);
  const replay = await service.stream(first.id);
  expect(replay.events.map((event) => event.event)).toContain("stopped");
  stopped = { id: first.id, events: replay.events };
  running = second.id;
}, 60_000);
afterAll(() => service?.close());

/** What a request sent, as the service reads it: where a 400's fields must point. */
interface Sent {
  method: string;
  path: string;
  /** The JSON value sent, or the raw text; absent without a body. */
  body?: unknown;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** The route's path parameters, once the route is known. */
  params?: Record<string, string>;
  token?: string | null;
}

async function send(sent: Sent, rawBody?: string, target: TestService = service): Promise<Response> {
  const query = sent.query === undefined ? "" : `?${new URLSearchParams(sent.query).toString()}`;
  return target.call(`${sent.path}${query}`, {
    method: sent.method,
    headers: sent.headers ?? {},
    ...(rawBody !== undefined ? { body: rawBody } : sent.body === undefined ? {} : { body: JSON.stringify(sent.body) }),
    token: sent.token === undefined ? target.tokens.alice : sent.token,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
}

/**
 * Checks an answer to `sent`: below 500, and either one of `accepted` (its body returned) or a
 * refusal that is a well-formed problem (returned). A 400 names each refused field by where it is
 * in the request ("body.participants.0.lat", "querystring.limit", "headers.last-event-id"): its
 * location, then keys the request has — the last may be missing when the message says it is required.
 * A 409 is one the request explains (unexplained409).
 */
async function answer(sent: Sent, response: Response, accepted: readonly number[]): Promise<{ status: number; problem?: Problem; text?: string }> {
  const where = `${sent.method} ${sent.path} → ${response.status}`;
  expect(response.status, where).toBeLessThan(500);
  if (response.status < 400) {
    expect(accepted, where).toContain(response.status);
    const text = await response.text();
    expect(text, where).not.toMatch(STACK_FRAME);
    return { status: response.status, text };
  }
  const refusal = await problemOf(response, response.status);
  const words = [refusal.detail ?? "", ...(refusal.errors ?? []).map((entry) => entry.message)];
  for (const text of words) {
    expect(text, where).not.toMatch(ZOD_DEFAULTS);
    expect(text, where).not.toMatch(STACK_FRAME);
  }
  if (response.status === 409) {
    expect(unexplained409(sent, refusal.detail, ROOMY), where).toBeUndefined();
  }
  if (response.status === 400) {
    expect(refusal.errors, `${where}: a 400 names its fields (${refusal.detail})`).toBeDefined();
    expect(refusal.errors!.length, where).toBeGreaterThan(0);
    for (const entry of refusal.errors!) {
      expect(namesRequestField(sent, entry.field, entry.message), `${where}: ${entry.field} (${entry.message}) is not a field of the request`).toBe(true);
    }
  }
  return { status: response.status, problem: refusal };
}

function namesRequestField(sent: Sent, field: string, message: string): boolean {
  const [location, ...path] = field.split(".");
  if (!(LOCATIONS as readonly string[]).includes(location!)) {
    return false;
  }
  if (location === "path") {
    return path.length === 0;
  }
  const root: unknown = { body: sent.body, querystring: sent.query ?? {}, params: sent.params ?? {}, headers: sent.headers ?? {} }[location!];
  if (location === "body" && sent.body === undefined) {
    // No body sent: what is refused is the body itself.
    return path.length === 0;
  }
  let value = root;
  for (const [index, key] of path.entries()) {
    const last = index === path.length - 1;
    const has = typeof value === "object" && value !== null && Object.hasOwn(value, Array.isArray(value) ? Number(key) : key);
    if (!has) {
      return last && message.startsWith("is required");
    }
    value = (value as Record<string, unknown>)[key];
  }
  return true;
}

// Requests -----------------------------------------------------------------------------------

/** A header value as fetch sends it: without the spaces and tabs around it (HTTP whitespace; String#trim would also take a no-break space). */
const sentHeader = (value: string) => value.replace(/^[ \t]+|[ \t]+$/g, "");
/** Text a header can carry: fetch refuses control characters (DEL too), anything past Latin-1, and no text at all. */
const headerText = fc
  .string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((code) => code !== 0x7f).map((code) => String.fromCharCode(code)), minLength: 1, maxLength: 200 })
  .filter((text) => sentHeader(text) !== "");
/** Addresses that are addresses but locate nowhere: private, reserved, documentation. */
const UNLOCATED = ["10.0.0.1", "192.168.1.20", "0.0.0.0", "192.0.2.1", "224.0.0.1", "2001:db8::1", "::1"];
/** Addresses the service's offline database locates. */
const LOCATED = ["193.2.1.66", "129.215.0.1"];
const participant = fc.oneof(
  fc.record({ lat: fc.double({ min: -90, max: 90, noNaN: true }), lon: fc.double({ min: -180, max: 180, noNaN: true }) }),
  fc.constantFrom(...LOCATED).map((ip) => ({ ip })),
);
/**
 * Conferences of up to 100 participants fit a node of the testbed above (185 vCPU at most, with
 * every stream and no simulcast); one request in twenty may ask for anything up to the limit,
 * most of which no node holds: the 409 a valid request may get, and the rarer outcome.
 */
const expectedParticipants = fc.oneof({ weight: 19, arbitrary: fc.integer({ min: 1, max: 100 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 100_000 }) });
const validRequest = fc.record(
  {
    participants: fc.array(participant, { minLength: 1, maxLength: 6 }),
    expectedParticipants,
    lastN: fc.integer({ min: -1, max: 1000 }),
    simulcast: fc.boolean(),
    objective: fc.constantFrom("mean", "worstPair", "p95"),
  },
  { requiredKeys: ["participants"] },
);

type Json = ReturnType<typeof JSON.parse>;

/**
 * A valid request as the service judges an Idempotency-Key's retry: what it receives (the JSON
 * sent, read by the route's schema) with the service's own defaults applied. Two requests are the
 * same when these are deeply equal, whatever order their keys came in.
 */
const meaningOf = (body: unknown): Required<ConferenceRequest> => withDefaults(conferenceRequest.parse(JSON.parse(JSON.stringify(body))));
/** The same request in other words: every default spelled out, the keys in reverse order. */
const spelledOut = (body: unknown) => Object.fromEntries(Object.entries(meaningOf(body)).reverse());

/** A valid request with one thing changed: a field set to any JSON value or removed, a key added, where in the request it was. */
const brokenRequest = fc
  .tuple(
    validRequest,
    fc.oneof(
      fc.record({ kind: fc.constant("set" as const), key: fc.constantFrom("participants", "expectedParticipants", "lastN", "simulcast", "objective"), value: fc.jsonValue() }),
      fc.record({ kind: fc.constant("remove" as const), key: fc.constantFrom("participants", "expectedParticipants", "lastN", "simulcast", "objective") }),
      fc.record({ kind: fc.constant("set" as const), key: fc.string({ maxLength: 12 }), value: fc.jsonValue() }),
      fc.record({ kind: fc.constant("setParticipant" as const), index: fc.nat(), key: fc.constantFrom("ip", "lat", "lon", "city"), value: fc.oneof(fc.jsonValue(), fc.constantFrom(...UNLOCATED)) }),
      fc.record({ kind: fc.constant("removeParticipant" as const), index: fc.nat(), key: fc.constantFrom("ip", "lat", "lon") }),
      fc.record({ kind: fc.constant("replaceParticipant" as const), index: fc.nat(), value: fc.jsonValue() }),
    ),
  )
  .map(([request, change]) => {
    const body = structuredClone(request) as Record<string, Json>;
    const participants = body.participants as Record<string, Json>[];
    switch (change.kind) {
      case "set":
        Object.defineProperty(body, change.key, { value: change.value, enumerable: true, configurable: true, writable: true });
        return { body, changed: ["body", change.key] };
      case "remove":
        delete body[change.key];
        return { body, changed: ["body", change.key] };
      case "setParticipant": {
        const index = change.index % participants.length;
        Object.defineProperty(participants[index], change.key, { value: change.value, enumerable: true, configurable: true, writable: true });
        return { body, changed: ["body", "participants", String(index), change.key] };
      }
      case "removeParticipant": {
        const index = change.index % participants.length;
        delete participants[index]![change.key];
        return { body, changed: ["body", "participants", String(index), change.key] };
      }
      case "replaceParticipant": {
        const index = change.index % participants.length;
        participants[index] = change.value as Record<string, Json>;
        return { body, changed: ["body", "participants", String(index)] };
      }
    }
  });

/** True when one of the paths is a prefix of the other: an error about the changed field, a part of it or what holds it. */
function related(field: string, changed: readonly string[]): boolean {
  const parts = field.split(".");
  return parts.every((part, index) => index >= changed.length || part === changed[index]) || changed.every((part, index) => index >= parts.length || part === parts[index]);
}

const POSTS = [
  { path: "/v1/conferences", ok: 202 },
  { path: "/v1/placements", ok: 200 },
] as const;

const run = <Ts extends [unknown, ...unknown[]]>(property: fc.IAsyncPropertyWithHooks<Ts>, routes = 1) => fc.assert(property, { numRuns: RUNS * routes });

// Properties ---------------------------------------------------------------------------------

describe("POST /v1/conferences and /v1/placements", () => {
  it(
    "refuse any JSON body that is not a request, naming the field, and answer the rest",
    async () => {
      await run(
        fc.asyncProperty(fc.constantFrom(...POSTS), fc.jsonValue(), async (route, body) => {
          const sent: Sent = { method: "POST", path: route.path, body };
          await answer(sent, await send(sent), [route.ok]);
        }),
        2,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "refuse a valid request with one field broken, naming that field, or accept it when it is still valid",
    async () => {
      await run(
        fc.asyncProperty(fc.constantFrom(...POSTS), brokenRequest, async (route, { body, changed }) => {
          const sent: Sent = { method: "POST", path: route.path, body };
          const { status, problem } = await answer(sent, await send(sent), [route.ok]);
          if (status === 400) {
            const fields = problem!.errors!.map((entry) => entry.field);
            expect(fields.some((field) => related(field, changed)), `${fields.join(", ")} say nothing about ${changed.join(".")}`).toBe(true);
          } else {
            expect([route.ok, 409]).toContain(status);
          }
        }),
        2,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "accept valid requests: placed (202 or 200), or 409 only for a conference no node holds; nine in ten are placed",
    async () => {
      const tallies = Object.fromEntries(POSTS.map((route) => [route.path, { sent: 0, taken: 0 }])) as Record<(typeof POSTS)[number]["path"], Tally>;
      await run(
        fc.asyncProperty(fc.constantFrom(...POSTS), validRequest, async (route, body) => {
          const sent: Sent = { method: "POST", path: route.path, body };
          const response = await send(sent);
          const location = response.headers.get("location");
          const { status, text } = await answer(sent, response, [route.ok]);
          expect([route.ok, 409], text).toContain(status);
          tallies[route.path].sent++;
          if (status === 202) {
            const created = createdView.parse(JSON.parse(text!));
            expect(location).toBe(created.links.self);
          } else if (status === 200) {
            decisionRecord.parse(JSON.parse(text!));
          }
          tallies[route.path].taken += status === route.ok ? 1 : 0;
        }),
        2,
      );
      for (const [path, tally] of Object.entries(tallies)) {
        expect(shareOf(tally), `${path}: ${tally.taken} of ${tally.sent} valid requests placed`).toBeGreaterThanOrEqual(MIN_TAKEN_SHARE);
      }
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "refuse a request whose addresses all locate nowhere, naming each address where the body has it",
    async () => {
      const unlocated = fc.array(fc.constantFrom(...UNLOCATED).map((ip) => ({ ip })), { minLength: 1, maxLength: 4 });
      await run(
        fc.asyncProperty(fc.constantFrom(...POSTS), unlocated, async (route, participants) => {
          const sent: Sent = { method: "POST", path: route.path, body: { participants } };
          const { status, problem } = await answer(sent, await send(sent), []);
          expect(status).toBe(400);
          expect(problem!.errors!.map((entry) => entry.field)).toEqual(participants.map((_, index) => `body.participants.${index}.ip`));
        }),
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "refuse a body of any text and media type without quoting it",
    async () => {
      const mediaType = fc.oneof(fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "application/xml"), headerText);
      await run(
        fc.asyncProperty(fc.constantFrom(...POSTS), fc.string({ unit: "grapheme", maxLength: 300 }), mediaType, async (route, text, type) => {
          // What the service parses: JSON under a JSON media type, the text under text/plain.
          let body: unknown = text;
          if (/^application\/json/i.test(sentHeader(type))) {
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
          }
          const sent: Sent = { method: "POST", path: route.path, body, headers: { "content-type": type } };
          const { problem } = await answer(sent, await send(sent, text), [route.ok]);
          if (problem !== undefined && text.trim().length >= 8) {
            expect(JSON.stringify(problem)).not.toContain(JSON.stringify(text).slice(1, -1));
          }
        }),
        2,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "take any Idempotency-Key that is 1 to 128 visible characters — a new one creates, a reused one returns its conference for the same request (however it is spelled) or refuses another — and refuse any other naming the header",
    async () => {
      /** The keys that created a conference, with the request (as the service reads it) and the conference. */
      const created = new Map<string, { meaning: Required<ConferenceRequest>; id: string }>();
      const tally: Tally = { sent: 0, taken: 0 };
      /** Runs whose request, sent again under its key in other words, got its conference back. */
      let respelledRetries = 0;
      /** One run in four sends its request twice under its key: as drawn and spelled out, in either order. */
      const respelling = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom("spelled out first", "spelled out second") });
      await run(
        fc.asyncProperty(fc.oneof(headerText, fc.stringMatching(/^[\x21-\x7e]{1,128}$/)), validRequest, respelling, async (key, drawn, respelled) => {
          const used = sentHeader(key);
          const bodies = respelled === undefined ? [drawn] : respelled === "spelled out first" ? [spelledOut(drawn), drawn] : [drawn, spelledOut(drawn)];
          // Texts that differ: a model comparing what was sent would expect a 409 for the second.
          expect(new Set(bodies.map((body) => JSON.stringify(body))).size).toBe(bodies.length);
          const ids: string[] = [];
          for (const body of bodies) {
            const sent: Sent = { method: "POST", path: "/v1/conferences", body, headers: { "idempotency-key": key } };
            const { status, problem, text } = await answer(sent, await send(sent), [202]);
            if (!/^[\x21-\x7e]{1,128}$/.test(used)) {
              expect(problem?.errors, `${JSON.stringify(key)} was taken`).toEqual([{ field: "headers.idempotency-key", message: expect.any(String) as string }]);
              continue;
            }
            const meaning = meaningOf(body);
            const earlier = created.get(used);
            if (earlier !== undefined && !isDeepStrictEqual(earlier.meaning, meaning)) {
              expect(problem?.detail, `${JSON.stringify(used)} again, for another request`).toBe(
                `the Idempotency-Key was used for another request (conference ${earlier.id}); use a new key for a new conference`,
              );
              continue;
            }
            tally.sent++;
            if (status !== 202) {
              expect(earlier, `${JSON.stringify(used)} again, for the same request: ${problem?.detail}`).toBeUndefined();
              expect(problem?.detail).toMatch(NO_ROOM);
              continue;
            }
            tally.taken++;
            const { id } = createdView.parse(JSON.parse(text!));
            expect(id, `${JSON.stringify(used)} again, for the same request`).toBe(earlier?.id ?? id);
            created.set(used, { meaning, id });
            ids.push(id);
          }
          respelledRetries += ids.length === 2 ? 1 : 0;
        }),
      );
      expect(shareOf(tally), `${tally.taken} of ${tally.sent} valid creates with a key placed`).toBeGreaterThanOrEqual(MIN_TAKEN_SHARE);
      // About one run in seven: a new valid key, and a conference that fits.
      expect(respelledRetries, "requests sent again in other words under their key").toBeGreaterThanOrEqual(RUNS / 25);
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe("the checks", () => {
  it("see a service that refuses valid requests for want of room it should have", async () => {
    // Room for one small conference per cluster, taken at once: a service that refuses what fits.
    const small: Capacity = { nodes: 1, vcpuPerNode: 0.75, memoryGiBPerNode: 2 };
    const full = await startTestService({ env: { SWITCH_TESTBED: testbedOf(small) } });
    try {
      const fits: Sent = { method: "POST", path: "/v1/conferences", body: { participants: [{ lat: 46.05, lon: 14.51 }], expectedParticipants: 2 } };
      let refused: Response | undefined;
      for (let attempt = 0; attempt <= parseSites(DEFAULT_SITES, "sites").length && refused === undefined; attempt++) {
        const response = await send(fits, undefined, full);
        refused = response.status === 409 ? response : (await response.body?.cancel(), undefined);
      }
      expect(refused, "the small testbed filled").toBeDefined();
      expect(unexplained409(fits, (await problemOf(refused!, 409)).detail, small)).toMatch(/^a node holds 500m CPU and \S+, so the testbed was full: no cluster has room/);

      const tally: Tally = { sent: 0, taken: 0 };
      for (const body of fc.sample(validRequest, 40)) {
        const response = await send({ method: "POST", path: "/v1/conferences", body }, undefined, full);
        tally.sent++;
        tally.taken += response.status === 202 ? 1 : 0;
        await response.body?.cancel();
      }
      expect(shareOf(tally)).toBeLessThan(MIN_TAKEN_SHARE);
    } finally {
      await full.close();
    }
  });
});

describe("GET /v1/conferences", () => {
  it(
    "lists for any valid query and refuses any other, naming the parameter",
    async () => {
      const key = fc.oneof(fc.constantFrom("state", "limit"), fc.string({ unit: "grapheme", maxLength: 12 }));
      const value = fc.oneof(fc.constantFrom(...CONFERENCE_STATES), fc.integer({ min: -10, max: 1000 }).map(String), fc.double().map(String), fc.string({ unit: "grapheme", maxLength: 20 }));
      await run(
        fc.asyncProperty(fc.dictionary(key, value, { maxKeys: 3 }), fc.constantFrom("admin", "alice", "bob"), async (query, who) => {
          const sent: Sent = { method: "GET", path: "/v1/conferences", query, token: service.tokens[who] };
          const { status, text } = await answer(sent, await send(sent), [200]);
          if (status === 200) {
            const { conferences } = conferenceList.parse(JSON.parse(text!));
            if (who !== "admin") {
              expect(conferences.every((conference) => conference.owner === who)).toBe(true);
            }
          } else {
            expect(status).toBe(400);
          }
        }),
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe("/v1/conferences/:id", () => {
  /** Ids of every kind: real ones, near ones, any text (encoded), and text sent as it is. */
  const anyId = fc.oneof(
    fc.constantFrom("stopped", "running").map((which) => ({ id: which, encoded: true })),
    fc.string({ unit: "grapheme", maxLength: 60 }).map((id) => ({ id, encoded: true })),
    fc.stringMatching(/^[a-z0-9]{1,50}$/).map((id) => ({ id, encoded: true })),
    fc.string({ unit: fc.constantFrom("a", "0", "%", "2", "f", "/", ".", "?", "#", "Z", "~", "\u00e9"), maxLength: 12 }).map((id) => ({ id, encoded: false })),
  );
  const idOf = ({ id, encoded }: { id: string; encoded: boolean }) => {
    const real = id === "stopped" ? stopped.id : id === "running" ? running : id;
    return { real, segment: encoded ? encodeURIComponent(real) : real };
  };

  it(
    "GET and DELETE answer any id: the conference for its owner and admins, 404 for others, 400 naming params.id",
    async () => {
      await run(
        fc.asyncProperty(anyId, fc.constantFrom("GET", "DELETE"), fc.constantFrom("admin", "alice", "bob"), async (given, method, who) => {
          const { real, segment } = idOf(given);
          const sent: Sent = { method, path: `/v1/conferences/${segment}`, params: { id: real }, token: service.tokens[who] };
          const ok = method === "GET" ? 200 : 202;
          const { status, text } = await answer(sent, await send(sent), [ok]);
          if (status === ok) {
            expect(conferenceView.parse(JSON.parse(text!)).owner === who || who === "admin").toBe(true);
          } else if ([stopped.id, running].includes(real) && given.encoded) {
            // Another organizer's conference is not found: its id reveals nothing.
            expect({ who, status }).toEqual({ who: "bob", status: 404 });
          }
        }),
        2,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "events replay exactly what came after any Last-Event-ID, and 204 once there is nothing more",
    async () => {
      const last = Number(stopped.events.at(-1)!.id);
      await run(
        fc.asyncProperty(fc.integer({ min: 0, max: last + 3 }), async (after) => {
          const expected = stopped.events.filter((event) => Number(event.id) > after);
          if (expected.length === 0) {
            const sent: Sent = { method: "GET", path: `/v1/conferences/${stopped.id}/events`, headers: { accept: "text/event-stream", "last-event-id": String(after) } };
            const response = await send(sent);
            expect(response.status).toBe(204);
            expect(await response.text()).toBe("");
            return;
          }
          const streamed = await service.stream(stopped.id, { lastEventId: String(after), timeoutMs: REQUEST_TIMEOUT_MS });
          expect(streamed.status).toBe(200);
          expect(streamed.events).toEqual(expected);
        }),
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "events answer any id, Last-Event-ID and Accept: a stream, 204, or a problem naming the header",
    async () => {
      const accept = fc.option(fc.oneof(fc.constantFrom("text/event-stream", "*/*", "text/*", "application/json", "text/event-stream;q=0", "text/html, */*;q=0.1"), headerText), { nil: undefined });
      const lastEventId = fc.option(fc.oneof(fc.nat().map(String), headerText), { nil: undefined });
      await run(
        fc.asyncProperty(anyId, lastEventId, accept, async (given, after, acceptHeader) => {
          const { real, segment } = idOf(given);
          const headers = { ...(after === undefined ? {} : { "last-event-id": after }), ...(acceptHeader === undefined ? {} : { accept: acceptHeader }) };
          const sent: Sent = { method: "GET", path: `/v1/conferences/${segment}/events`, params: { id: real }, headers };
          const response = await send(sent);
          if (response.status === 200) {
            // The running conference's stream goes on: its head is what can be checked.
            expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
            await response.body?.cancel();
            return;
          }
          const { status, problem } = await answer(sent, response, [204]);
          if (status === 400) {
            expect(problem!.errors!.every((entry) => ["headers.last-event-id", "params.id", "path"].includes(entry.field))).toBe(true);
          }
        }),
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe("every route", () => {
  const ROUTES = [
    { path: "/v1/conferences", methods: ["GET", "POST"] },
    { path: "/v1/placements", methods: ["POST"] },
    { path: "/v1/clusters", methods: ["GET"] },
    { path: "/healthz", methods: ["GET"] },
    { path: "/readyz", methods: ["GET"] },
    { path: "/metrics", methods: ["GET"] },
    { path: "/openapi.json", methods: ["GET"] },
  ];
  /** Who calls: a token's name, none, or a forged one. */
  const token = fc.oneof(fc.constantFrom("admin", "alice", "nobody"), headerText.map((text) => `forged:${text}`));
  const bearerOf = (who: string) => (who === "admin" || who === "alice" ? service.tokens[who] : who === "nobody" ? null : who.slice("forged:".length));

  it(
    "GET routes answer any query string and token: their body, 401 or 403 as problems",
    async () => {
      const gets = ROUTES.filter((route) => route.methods.includes("GET") && route.path !== "/v1/conferences");
      await run(
        fc.asyncProperty(fc.constantFrom(...gets), fc.dictionary(fc.string({ unit: "grapheme", maxLength: 10 }), fc.string({ unit: "grapheme", maxLength: 20 }), { maxKeys: 3 }), token, async (route, query, who) => {
          const sent: Sent = { method: "GET", path: route.path, query, token: bearerOf(who) };
          const { status, text } = await answer(sent, await send(sent), [200]);
          const isPublic = route.path === "/healthz" || route.path === "/readyz";
          const known = who === "admin" || who === "alice";
          if (isPublic) {
            expect(status).toBe(200);
            health.parse(JSON.parse(text!));
          } else if (!known) {
            expect(status).toBe(401);
          } else if (route.path === "/metrics" && who !== "admin") {
            expect(status).toBe(403);
          } else {
            expect(status).toBe(200);
            if (route.path === "/v1/clusters") {
              clusterList.parse(JSON.parse(text!));
            }
          }
        }),
        gets.length,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "any method on any path answers 405 naming the methods it has, or 404 for a path that is none",
    async () => {
      const method = fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY", "PROPFIND");
      const path = fc.oneof(
        fc.constantFrom(...ROUTES.map((route) => route.path), `/v1/conferences/${"x"}`, "/v1/conferences/x/events"),
        fc.string({ unit: "grapheme", maxLength: 20 }).map((text) => `/v1/${encodeURIComponent(text)}`),
      );
      await run(
        fc.asyncProperty(method, path, async (verb, target) => {
          const sent: Sent = { method: verb, path: target, token: service.tokens.admin };
          const response = await send(sent);
          const allow = response.headers.get("allow");
          const { status } = await answer(sent, response, [200, 202, 204]);
          if (status === 405) {
            expect(allow?.split(", ")).not.toContain(verb);
            expect(allow!.length).toBeGreaterThan(0);
          }
        }),
        3,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});
