import ipaddr from "ipaddr.js";
import { z } from "zod";
import { expectedParticipants, lastN } from "../../domain/contracts/conference.ts";
import { clusterCapacity, clusterLocation } from "../../domain/contracts/testbed.ts";
import { DNS_LABEL, expected, latitude, longitude } from "../../domain/validation.ts";
import { CONFERENCE_STATES } from "../../domain/conference-lifecycle.ts";
import { ROLES } from "../../domain/wae/model.ts";
import { EVENT_TYPES, POP_DECISION_OUTCOMES, conferenceRecord, decisionRecord, resourceChange } from "../../domain/records.ts";

/**
 * One schema per route (STYLE.md 13): the single source of the route's validation, its types and
 * /openapi.json. Every field says what it wants and how to fix it; no zod default text reaches a
 * user.
 */

/** The most participants one request may list; a conference sized for more gives `expectedParticipants`. */
export const MAX_LISTED_PARTICIPANTS = 10_000;
/** The most conferences (or PoP decisions) one list returns. */
export const MAX_LIST_LIMIT = 500;
export const DEFAULT_LIST_LIMIT = 100;

const ip = z
  .string({ error: expected("a string", 'give an IPv4 or IPv6 address, e.g. "193.2.1.66"') })
  .max(64, { error: 'is too long for an address; give an IPv4 or IPv6 address, e.g. "193.2.1.66"' })
  .refine((text) => ipaddr.isValid(text) && (ipaddr.IPv4.isValidFourPartDecimal(text) || (text.includes(":") && ipaddr.IPv6.isValid(text))), {
    error: 'is not an IPv4 or IPv6 address; give e.g. "193.2.1.66" or "2001:1470::1"',
  })
  // The refinement is code; /openapi.json says the same in JSON Schema for clients and fuzzers.
  .meta({ anyOf: [{ format: "ipv4" }, { format: "ipv6" }] });

const participant = z.union(
  [
    z.strictObject({ ip }, { error: expected("{ ip } or { lat, lon }") }),
    z.strictObject({ lat: latitude.meta({ minimum: -90, maximum: 90 }), lon: longitude.meta({ minimum: -180, maximum: 180 }) }, { error: expected("{ ip } or { lat, lon }") }),
  ],
  { error: expected("{ ip } or { lat, lon }", 'give e.g. { "ip": "193.2.1.66" } or { "lat": 46.05, "lon": 14.51 }') },
);

export const conferenceRequest = z.strictObject(
  {
    /** Where participants are: addresses (located offline) or coordinates. */
    participants: z
      .array(participant, { error: expected("a list of { ip } or { lat, lon }") })
      .min(1, { error: "is empty; give at least one participant to place the conference near" })
      .max(MAX_LISTED_PARTICIPANTS, { error: `lists more than ${MAX_LISTED_PARTICIPANTS}; list a sample and give expectedParticipants` }),
    /** Participants to size for. Defaults to as many as are listed. */
    expectedParticipants: expectedParticipants.max(100_000, { error: "is more than a conference can hold; give at most 100000" }).optional(),
    /** Video streams each participant receives, -1 for all. Defaults to -1. */
    lastN: lastN.max(1000, { error: "is more streams than a client can show; give at most 1000, or -1 for all" }).optional(),
    /** Defaults to true. */
    simulcast: z.boolean({ error: expected("true or false") }).optional(),
    /** What placement minimises. Defaults to "mean". */
    objective: z.enum(["mean", "worstPair", "p95"], { error: 'is not an objective; use "mean", "worstPair" or "p95"' }).optional(),
  },
  { error: expected("a JSON object", "give { participants, expectedParticipants?, lastN?, simulcast?, objective? }") },
);

export const idempotencyHeaders = z.object({
  "idempotency-key": z
    .string({ error: expected("a string") })
    .regex(/^[\x21-\x7e]{1,128}$/, { error: "must be 1 to 128 visible ASCII characters" })
    .optional(),
});

export const conferenceParams = z.object({
  id: z.string({ error: expected("a string") }).regex(/^[a-z0-9]{1,40}$/, { error: "is not a conference id; ids are lowercase letters and digits" }),
});

/**
 * An optional query parameter read by `schema`, refused first when it is empty (`?limit=`) or given
 * more than once: what `schema` would say of those ("is below 1" of an empty limit, which coerces
 * to 0; "must be a number" of two) is not what is wrong. `fix` says what the parameter takes.
 */
function queryParameter<T extends z.ZodType>(schema: T, fix: string) {
  return z
    .preprocess((value, context) => {
      if (Array.isArray(value)) {
        context.addIssue({ code: "custom", input: value, message: `is given ${value.length} times; give it once` });
        return z.NEVER;
      }
      if (typeof value === "string" && value.trim() === "") {
        context.addIssue({ code: "custom", input: value, message: `is empty; ${fix}` });
        return z.NEVER;
      }
      return value;
    }, schema)
    .optional();
}

const LIMIT_FIX = `give a whole number from 1 to ${MAX_LIST_LIMIT}, or leave limit out for ${DEFAULT_LIST_LIMIT}`;

/** A list's `limit`, the same for every list. */
const listLimit = queryParameter(
  z.coerce
    .number({ error: expected("a number", LIMIT_FIX) })
    .int({ error: `is not a whole number; ${LIMIT_FIX}` })
    .min(1, { error: `is below 1; ${LIMIT_FIX}` })
    .max(MAX_LIST_LIMIT, { error: `is above ${MAX_LIST_LIMIT}; ${LIMIT_FIX}` }),
  LIMIT_FIX,
);

export const listQuery = z.strictObject(
  {
    state: queryParameter(
      z.enum(CONFERENCE_STATES, { error: `is not a state; use one of ${CONFERENCE_STATES.join(", ")}` }),
      `use one of ${CONFERENCE_STATES.join(", ")}, or leave state out for every state`,
    ),
    limit: listLimit,
    /** Where the page starts: the `next` of the page before. */
    cursor: queryParameter(
      z
        .string({ error: expected("a string") })
        .refine((text) => decodeCursor(text) !== undefined, { error: "is not a cursor; follow the `next` link of the page before" })
        .transform((text) => decodeCursor(text)!),
      "follow the `next` link of the page before, or leave cursor out for the first page",
    ),
  },
  { error: expected("query parameters state, limit and cursor") },
);

const listCursor = z.strictObject({ createdAt: z.iso.datetime(), id: z.string().regex(/^[a-z0-9]{1,40}$/) });

/** A list's position as the `cursor` parameter carries it: opaque to clients, base64url JSON here. */
export function encodeCursor(cursor: z.output<typeof listCursor>): string {
  return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

function decodeCursor(text: string): z.output<typeof listCursor> | undefined {
  if (!/^[A-Za-z0-9_-]{1,256}$/.test(text)) {
    return undefined;
  }
  try {
    const parsed = listCursor.safeParse(JSON.parse(Buffer.from(text, "base64url").toString("utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export const eventsHeaders = z.object({
  "last-event-id": z.string({ error: expected("a string") }).regex(/^\d{1,15}$/, { error: "is not an event id; give the id of the last event received" }).optional(),
});

/** A conference as the API shows it. */
export const conferenceView = conferenceRecord;

export const createdView = z.object({
  id: z.string(),
  state: z.enum(CONFERENCE_STATES),
  decision: decisionRecord,
  links: z.object({ self: z.string(), events: z.string() }),
});

export const conferenceList = z.object({
  conferences: z.array(conferenceView),
  /** The next page's URL, while there is one. */
  next: z.string().optional(),
});

export const clusterView = z.object({
  provider: z.string(),
  region: z.string().optional(),
  zone: z.string().optional(),
  location: clusterLocation,
  exposure: z.string(),
  capacity: clusterCapacity,
  /** Kubernetes quantities free now. */
  free: z.object({ cpu: z.string(), memory: z.string() }),
  /** Conferences holding capacity on it. */
  conferences: z.number().int(),
});
export const clusterList = z.object({ engine: z.enum(["local", "offline"]), clusters: z.record(z.string(), clusterView) });

/** RFC 9457 problem details, with the failing fields named. */
export const problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});
export type Problem = z.output<typeof problem>;

export const health = z.object({ status: z.string(), engine: z.string().optional(), detail: z.string().optional() });

/** What an event's `data` holds: its type's fields and when it happened. */
export const streamEventData = z.looseObject({ at: z.string() });
const { $schema: _dialect, ...streamEventDataJson } = z.toJSONSchema(streamEventData, { io: "output" });

/** One event of a conference's stream as it goes on the wire (text/event-stream), data as JSON. */
export const streamEvent = z.object({
  id: z.string().regex(/^\d+$/),
  event: z.enum(EVENT_TYPES),
  data: z.string().meta({ contentMediaType: "application/json", contentSchema: streamEventDataJson }),
});

/** A conference stack the backend holds and no record owns. */
export const orphanView = z.object({
  name: z.string(),
  /** found: nothing runs on it; destroying: an admin asked; failed: the last destroy failed. */
  state: z.enum(["found", "destroying", "failed"]),
  error: z.string().optional(),
});
export const orphanList = z.object({ stacks: z.array(orphanView) });
export const orphanParams = z.object({
  name: z.string({ error: expected("a string") }).regex(/^conf-[a-z0-9]{1,40}$/, { error: "is not a conference stack's name; give conf-<id>, as GET /v1/orphan-stacks lists them" }),
});

/**
 * The PoPs (routes/pops.ts). A decision's shape is the API's own: the store keeps what the loop
 * chose as an untyped map (empty for a decision held before it chose), which is shown typed here,
 * and left out when there is none.
 */

export const popParams = z.object({
  pop: z.string({ error: expected("a string") }).regex(DNS_LABEL, { error: "is not a PoP's name; PoP names are DNS labels (lowercase letters, digits and '-'), as GET /v1/pops lists them" }),
});

/** Each host's edges, by role; a host without edges is left out. */
const popLayout = z.record(z.string(), z.array(z.enum(ROLES)));
/** Each container's address, by "<host>/<role>" (edges, "lb", "mid", "dns", "im"). */
const popAddresses = z.record(z.string(), z.string());

/** One decision of a PoP's loop. */
export const popDecisionView = z.object({
  id: z.number().int(),
  pop: z.string(),
  decidedAt: z.string(),
  /** The start of the period decided. */
  periodStart: z.string(),
  /** How the layout was computed: "exact", "paper", "none" (held before computing), "configured" (the stack file's). */
  strategy: z.string(),
  /**
   * unchanged: the running layout stands; held: a change not yet wanted long enough, or no
   * decision possible yet (`reason` says which); applying: its `up` is queued or runs; applied;
   * failed: the last good layout stays; superseded: a newer decision came before its `up` began.
   */
  outcome: z.enum(POP_DECISION_OUTCOMES),
  /** What it saw: hosts, requests, the running layout, silent and unavailable hosts. */
  inputs: z.record(z.string(), z.unknown()),
  /** The layout it chose and its addresses; absent when it chose none. */
  chosen: z.object({ layout: popLayout, addresses: popAddresses }).optional(),
  /** Milliseconds each step took. */
  timings: z.record(z.string(), z.number()),
  reason: z.string().optional(),
  /** The `up` that applies it. */
  operationId: z.number().int().optional(),
  /** What its `up` did to each resource of the stack (an unchanged edge is "same"), once the `up` ended. */
  changes: z.array(resourceChange).optional(),
});

/** A PoP as it runs. */
export const popView = z.object({
  name: z.string(),
  /** Its stack, pop-<name>. */
  stack: z.string(),
  hosts: z.array(z.string()),
  /** The last good layout (the newest applied decision's, else the stack file's) and its addresses. */
  layout: popLayout,
  addresses: popAddresses,
  /** The newest decision, whatever became of it. */
  lastDecision: popDecisionView.optional(),
  /** Per host, the end of its latest accepted report; a host that never reported is absent. */
  lastReports: z.record(z.string(), z.string()),
  /** The id of the `up` that runs or waits on the PoP's stack, while one does. */
  pendingOperation: z.number().int().optional(),
});

/** A PoP in the list: what it runs, and the newest decision in brief. */
export const popSummary = popView.pick({ name: true, stack: true, hosts: true, layout: true, pendingOperation: true }).extend({
  lastDecision: popDecisionView.pick({ id: true, decidedAt: true, outcome: true, reason: true }).optional(),
});
export const popList = z.object({ pops: z.array(popSummary) });

export const popDecisionsQuery = z.strictObject(
  {
    limit: listLimit,
    /** Where the page starts: decisions older than this id. */
    before: queryParameter(
      z.coerce
        .number({ error: expected("a number", "follow the `next` link of the page before") })
        .int({ error: "is not a decision's id; follow the `next` link of the page before" })
        .min(1, { error: "is not a decision's id; follow the `next` link of the page before" })
        .max(Number.MAX_SAFE_INTEGER, { error: "is not a decision's id; follow the `next` link of the page before" }),
      "follow the `next` link of the page before, or leave before out for the newest decisions",
    ),
  },
  { error: expected("query parameters limit and before") },
);

/** A PoP's decisions, newest first. */
export const popDecisionList = z.object({
  decisions: z.array(popDecisionView),
  /** The next page's URL, while there is one. */
  next: z.string().optional(),
});

/** A report taken (202), or the same report taken before (200): either way delivered. */
export const reportAccepted = z.object({ status: z.literal("accepted") });
export const reportDuplicate = z.object({ status: z.literal("duplicate") });
