import { createHash } from "node:crypto";
import type { PopSpec } from "../../../domain/contracts/cdn-pop.ts";
import { InvalidArgumentsError } from "../../../domain/errors.ts";
import { type InstanceManagerReport, parseReport } from "../../../domain/wae/reports.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verify } from "../../../domain/wae/signature.ts";

/**
 * The service's side of an instance manager's report (ARCHITECTURE.md "PoP loop"): whether a
 * `POST /v1/pops/:pop/reports` is taken, answered as already taken, or refused, and why. Pure: the
 * clock, the store's last accepted period and the keys come in; a decision goes out, which the
 * route answers, counts (by {@link REFUSAL_REASONS}) and persists.
 *
 * Nothing a caller has not authenticated is read beyond what finding its key needs. In order:
 * the body's size; the two headers' presence and spelling; the body as UTF-8 JSON with `host` a
 * string; that host's key, against which the signature verifies; the timestamp's age; only then
 * the report's schema, its PoP, and its period against the host's last accepted one.
 *
 * A period is identified by (host, periodStart). The agent (automation/instance-manager/agent.ts,
 * `answerOf`) sends its reports one at a time, oldest first, and re-sends the same bytes after a
 * failure, so a host's retry is always of its latest period: comparing with the last accepted
 * period alone tells a retry (duplicate) from a second, different report of a period (conflict)
 * and from one that overlaps what is already counted (out-of-order).
 */

/** Why a report is refused, as metrics label it. */
export const REFUSAL_REASONS = ["oversized", "malformed", "unknown-host", "forged", "replayed", "late", "out-of-order", "conflict"] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/**
 * The HTTP status of each refusal, for the agent's `answerOf`: 2xx and 409 are delivered, 429 and
 * 5xx retried, any other 4xx logged and dropped.
 *
 * - oversized 413, malformed 400: the same bytes will never pass; the agent logs and drops them.
 * - unknown-host 401, as forged, with the same detail: a caller without a key learns nothing of
 *   which hosts exist (a 404 would list them, one guess at a time). The agent's hint for 401
 *   ("is the key this host's?") fits a host missing from the PoP's config as well.
 * - replayed 401: the signature holds but its time is outside the window; it is the host's clock
 *   or a recorded request, and either way the request is not taken as authentic.
 * - late 422: the loop has decided that period already, so re-sending never helps; 422 makes the
 *   agent drop it *and log it*, which is what an operator needs to see (a host whose reports
 *   arrive late has a backlog or a clock problem). A 409 would be read as delivered, silently.
 * - out-of-order 409, conflict 409: the service holds a report covering that time already; the
 *   agent takes that as delivered and moves on to its next report rather than block on one that
 *   can never be counted. The service sees them in its metrics, by reason.
 */
export const REFUSAL_STATUS = {
  oversized: 413,
  malformed: 400,
  "unknown-host": 401,
  forged: 401,
  replayed: 401,
  late: 422,
  "out-of-order": 409,
  conflict: 409,
} as const satisfies Record<RefusalReason, number>;

/**
 * How far a send attempt's signed timestamp may be from the service's clock, either way, in
 * seconds. The agent signs every attempt anew with that attempt's time, so the window only has to
 * cover clock skew between a host and the service plus the request's transit; five minutes leaves
 * an NTP-less host room to drift and is the tolerance webhooks commonly use (Stripe's and Slack's
 * signed requests). It bounds replay: a recorded request is refused once it is older than this,
 * and within it a replay is a duplicate or out of order, never counted twice.
 */
export const DEFAULT_WINDOW_SECONDS = 300;

/**
 * The largest body taken, in bytes. A report is about 400 bytes (a PoP, a host, two times and
 * seven numbers); 16 KiB leaves room for long names and pretty-printed JSON, and bounds what an
 * unauthenticated caller can make the service decode, parse and hash per request. The route's own
 * body limit should be no larger, so that a larger body is never buffered.
 */
export const DEFAULT_MAX_BYTES = 16 * 1024;

/** A time as the store or the loop holds it: ISO 8601 text (as reports carry it) or milliseconds since 1970. */
export type Instant = string | number;

/** What the store holds of a host's latest accepted period. */
export interface AcceptedPeriod {
  periodStart: Instant;
  periodEnd: Instant;
  /** {@link reportDigest} of the body that was accepted. */
  digest: string;
}

/** Headers as Node gives them: lower-case names; a value, several, or none. */
export type ReportHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface ReportAdmissionInput {
  /** The PoP of the route (`:pop`), as its config names it and its hosts. */
  pop: Pick<PopSpec, "name"> & { hosts: readonly Pick<PopSpec["hosts"][number], "name">[] };
  /** Each host's report key. A host of the PoP without one cannot report. */
  keys: ReadonlyMap<string, string> | Readonly<Record<string, string>>;
  /** The exact bytes received (a string is taken as its UTF-8 encoding). */
  body: Uint8Array | string;
  /** The request's headers, e.g. fastify's `request.headers`; {@link TIMESTAMP_HEADER} and {@link SIGNATURE_HEADER} are read. */
  headers: ReportHeaders;
  /** The service's clock, in seconds since 1970. */
  nowSeconds: number;
  /** The host's latest accepted period, or undefined when it has none. */
  last: (host: string) => AcceptedPeriod | undefined;
  /** The end of the last period the loop decided: a report ending by then is late. Without it no report is late. */
  decidedUntil?: Instant;
}

export interface ReportAdmissionOptions {
  /** Defaults to {@link DEFAULT_WINDOW_SECONDS}. */
  windowSeconds?: number;
  /** Defaults to {@link DEFAULT_MAX_BYTES}. */
  maxBytes?: number;
}

/**
 * A refusal. `detail` is what the caller may be told (e.g. a problem document's detail); it names
 * fields and headers but never quotes the body. `reason` is for metrics and logs: answered to the
 * caller, it would tell "unknown-host" from "forged", which the detail and status do not.
 */
export interface ReportRefusal {
  outcome: "refused";
  reason: RefusalReason;
  status: (typeof REFUSAL_STATUS)[RefusalReason];
  detail: string;
}

/**
 * What to do with a report. "accepted": store it (with its digest) and count it. "duplicate": the
 * same bytes for a period already accepted (a retry after a lost answer): answer as for an accepted
 * report (2xx), store and count nothing.
 */
export type ReportAdmission = { outcome: "accepted"; report: InstanceManagerReport; digest: string } | { outcome: "duplicate" } | ReportRefusal;

/** The SHA-256 of a body's bytes, in hex: what tells a retry from a different report of a period. */
export function reportDigest(body: Uint8Array | string): string {
  return createHash("sha256").update(typeof body === "string" ? Buffer.from(body, "utf8") : body).digest("hex");
}

/** The one detail of a signature that does not verify, whether or not the host exists. */
const NOT_VERIFIED = `${SIGNATURE_HEADER} does not verify; sign "<${TIMESTAMP_HEADER}>.<body>" with this host's report key`;
/** Verified against when the host has no key, so that an unknown host costs the time a known one does. */
const NO_KEY = "0".repeat(64);
const SIGNATURE_TEXT = /^sha256=[0-9a-f]{64}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decides on one report; see the module's comment for the order of the checks. Throws only for bad arguments of the caller's. */
export function admitReport(input: ReportAdmissionInput, options: ReportAdmissionOptions = {}): ReportAdmission {
  const windowSeconds = options.windowSeconds ?? DEFAULT_WINDOW_SECONDS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  checkArguments(input.nowSeconds, windowSeconds, maxBytes);

  const bytes = typeof input.body === "string" ? Buffer.from(input.body, "utf8") : input.body;
  if (bytes.byteLength > maxBytes) {
    return refuse("oversized", `the body is ${bytes.byteLength} bytes, more than the ${maxBytes} a report may have; a report is a few hundred bytes`);
  }

  const timestampText = single(input.headers[TIMESTAMP_HEADER]);
  if (typeof timestampText !== "string") {
    return refuse("forged", absent(TIMESTAMP_HEADER, timestampText));
  }
  const signature = single(input.headers[SIGNATURE_HEADER]);
  if (typeof signature !== "string") {
    return refuse("forged", absent(SIGNATURE_HEADER, signature));
  }
  const timestamp = unixSeconds(timestampText);
  if (timestamp === undefined) {
    return refuse("forged", `${TIMESTAMP_HEADER} is not a unix time in whole seconds; send the attempt's Math.floor(Date.now() / 1000)`);
  }
  if (!SIGNATURE_TEXT.test(signature)) {
    return refuse("forged", `${SIGNATURE_HEADER} is not "sha256=" and 64 lower-case hex digits; send the HMAC-SHA256 of "<${TIMESTAMP_HEADER}>.<body>"`);
  }

  let text: string;
  let value: unknown;
  try {
    text = utf8.decode(bytes);
    value = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the input; the decoder's says nothing more than this.
    return refuse("malformed", "the body is not JSON in UTF-8; send the report as JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.hasOwn(value, "host") || typeof (value as { host: unknown }).host !== "string") {
    return refuse("malformed", 'the body is not a report naming its host; send { "pop", "host", "periodStart", … } as JSON');
  }
  const host = (value as { host: string }).host;
  const key = input.pop.hosts.some((known) => known.name === host) ? keyOf(input.keys, host) : undefined;
  const verified = verify(text, signature, timestampText, key ?? NO_KEY);
  if (key === undefined) {
    return refuse("unknown-host", NOT_VERIFIED);
  }
  if (!verified) {
    return refuse("forged", NOT_VERIFIED);
  }
  const skew = timestamp - input.nowSeconds;
  if (Math.abs(skew) > windowSeconds) {
    return refuse(
      "replayed",
      `${TIMESTAMP_HEADER} is ${Math.round(Math.abs(skew))} s ${skew > 0 ? "ahead of" : "behind"} the service's clock, more than the ${windowSeconds} s allowed; set the host's clock right (NTP) and sign each attempt at the time it is sent`,
    );
  }

  let report: InstanceManagerReport;
  try {
    report = parseReport(value, "report");
  } catch (error) {
    if (error instanceof InvalidArgumentsError) {
      const fields = fieldsOf(error.problems);
      return refuse("malformed", `${fields.join(", ")} ${fields.length === 1 ? "is" : "are"} not valid; see its schema, domain/wae/reports.ts`);
    }
    throw error;
  }
  if (report.pop !== input.pop.name) {
    return refuse("malformed", `report.pop is not "${input.pop.name}", the PoP of this route; send each PoP's reports to its own /v1/pops/<pop>/reports`);
  }
  const start = Date.parse(report.periodStart);
  const end = Date.parse(report.periodEnd);
  // The agent reads, then signs when it sends: a period cannot end after the attempt that carries it.
  if (end >= (timestamp + 1) * 1000) {
    return refuse("malformed", `report.periodEnd is later than ${TIMESTAMP_HEADER}, the time the report was sent; a report covers a period that has ended`);
  }

  const digest = reportDigest(bytes);
  const last = input.last(host);
  if (last !== undefined) {
    const lastStart = milliseconds(last.periodStart, "last(host).periodStart");
    const lastEnd = milliseconds(last.periodEnd, "last(host).periodEnd");
    if (start === lastStart) {
      return last.digest === digest
        ? { outcome: "duplicate" }
        : refuse("conflict", `another report of the period from ${report.periodStart} was accepted already; a period is reported once`);
    }
    if (start < lastEnd) {
      return refuse("out-of-order", `the period starts before ${new Date(lastEnd).toISOString()}, the end of the host's last accepted period; periods follow each other`);
    }
  }
  if (input.decidedUntil !== undefined) {
    const decided = milliseconds(input.decidedUntil, "decidedUntil");
    if (end <= decided) {
      return refuse("late", `the period ended by ${new Date(decided).toISOString()}, when the last period the loop decided ended; a report reaches the service within its period's grace`);
    }
  }
  return { outcome: "accepted", report, digest };
}

function refuse(reason: RefusalReason, detail: string): ReportRefusal {
  return { outcome: "refused", reason, status: REFUSAL_STATUS[reason], detail };
}

/** One header value; undefined when absent, null when given more than once. */
function single(value: string | readonly string[] | undefined): string | undefined | null {
  if (typeof value === "string" || value === undefined) {
    return value;
  }
  return value.length === 0 ? undefined : value.length === 1 ? value[0]! : null;
}

function absent(name: string, value: undefined | null): string {
  return value === undefined ? `${name} is missing; every attempt carries ${TIMESTAMP_HEADER} and ${SIGNATURE_HEADER}` : `${name} is given more than once; send it once`;
}

/** The timestamp header's number, when it is written in its one spelling (as domain/wae/signature.ts `verify` requires). */
function unixSeconds(text: string): number | undefined {
  const seconds = Number(text);
  return Number.isSafeInteger(seconds) && seconds >= 0 && String(seconds) === text ? seconds : undefined;
}

/** A host's key; own entries only, so that "__proto__" or "constructor" is never a host with a key. */
function keyOf(keys: ReportAdmissionInput["keys"], host: string): string | undefined {
  const key: unknown = keys instanceof Map ? keys.get(host) : Object.hasOwn(keys, host) ? (keys as Readonly<Record<string, string>>)[host] : undefined;
  return typeof key === "string" && key.length > 0 ? key : undefined;
}

/**
 * The fields that parseReport's problems name, without what it says of them: its messages quote
 * values ("5 is more than …"), and an unknown key's name is the sender's text.
 */
function fieldsOf(problems: readonly string[]): string[] {
  return [...new Set(problems.map((problem) => (/^\S+ has an unknown key /.test(problem) ? `${problem.split(" ")[0]!} (an unknown key)` : problem.split(" ")[0]!)))];
}

function milliseconds(instant: Instant, what: string): number {
  const value = typeof instant === "number" ? instant : Date.parse(instant);
  if (!Number.isFinite(value)) {
    // A store or loop bug; read as no period, it would let every report through.
    throw new InvalidArgumentsError([`${what} is not a time; give ISO 8601 text or milliseconds since 1970`]);
  }
  return value;
}

function checkArguments(nowSeconds: number, windowSeconds: number, maxBytes: number): void {
  const problems = [
    ...(Number.isFinite(nowSeconds) ? [] : [`nowSeconds ${String(nowSeconds)} is not a time; give Date.now() / 1000`]),
    ...(Number.isFinite(windowSeconds) && windowSeconds >= 0 ? [] : [`windowSeconds ${String(windowSeconds)} is not a number of seconds; give e.g. ${DEFAULT_WINDOW_SECONDS}`]),
    ...(Number.isSafeInteger(maxBytes) && maxBytes > 0 ? [] : [`maxBytes ${String(maxBytes)} is not a number of bytes; give e.g. ${DEFAULT_MAX_BYTES}`]),
  ];
  if (problems.length > 0) {
    // Any of them read as given would let reports through that the window or the bound refuses.
    throw new InvalidArgumentsError(problems);
  }
}
