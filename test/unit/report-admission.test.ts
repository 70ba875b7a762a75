import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AcceptedPeriod,
  DEFAULT_MAX_BYTES,
  DEFAULT_WINDOW_SECONDS,
  REFUSAL_REASONS,
  REFUSAL_STATUS,
  type RefusalReason,
  type ReportAdmissionInput,
  admitReport,
  reportDigest,
} from "../../automation/service/loops/report-admission.ts";
import type { InstanceManagerReport } from "../../domain/wae/reports.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from "../../domain/wae/signature.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

const NOW = 1_800_000_000;
const iso = (seconds: number) => new Date(seconds * 1000).toISOString();
const POP = { name: "vienna", hosts: [{ name: "host1" }, { name: "host2" }, { name: "host3" }] };
const KEYS: Record<string, string> = { host1: "key-of-host1-3f9a0c1d", host2: "key-of-host2-7b2e4d6f", host3: "key-of-host3-0a1b2c3d" };
/** A value no detail may ever quote. */
const PLANTED = "tok-SECRET-1234567890";

const report = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  pop: "vienna",
  host: "host1",
  periodStart: iso(NOW - 605),
  periodEnd: iso(NOW - 5),
  cpu: { capacityCores: 4, usedCores: 1.5 },
  network: { linkMbps: 1000, txMbps: 120 },
  requests: { small: 10, large: 2, vod: 3, live: 0 },
  ...overrides,
});

interface Request {
  body?: Buffer | string;
  /** The host whose key signs; defaults to the report's. */
  signer?: string;
  key?: string;
  timestamp?: number;
  headers?: ReportAdmissionInput["headers"];
  last?: AcceptedPeriod;
  decidedUntil?: string | number;
  keys?: ReportAdmissionInput["keys"];
  pop?: ReportAdmissionInput["pop"];
}

/** A request as the agent sends it (the body signed with its host's key at NOW), then `overrides`; and whether the store was read. */
function admit(overrides: Request = {}, options = {}) {
  const body = overrides.body ?? JSON.stringify(report());
  const text = typeof body === "string" ? body : body.toString("utf8");
  const timestamp = overrides.timestamp ?? NOW;
  const key = overrides.key ?? KEYS[overrides.signer ?? "host1"]!;
  const headers = overrides.headers ?? { [TIMESTAMP_HEADER]: String(timestamp), [SIGNATURE_HEADER]: sign(text, key, timestamp) };
  const asked: string[] = [];
  const outcome = admitReport(
    {
      pop: overrides.pop ?? POP,
      keys: overrides.keys ?? KEYS,
      body,
      headers,
      nowSeconds: NOW,
      last: (host) => {
        asked.push(host);
        return overrides.last;
      },
      decidedUntil: overrides.decidedUntil,
    },
    options,
  );
  return { outcome, asked };
}

const signed = (text: string, key = KEYS.host1!, timestamp = NOW) => ({ [TIMESTAMP_HEADER]: String(timestamp), [SIGNATURE_HEADER]: sign(text, key, timestamp) });
const NOT_VERIFIED = 'x-switch-vaas-signature does not verify; sign "<x-switch-vaas-timestamp>.<body>" with this host\'s report key';
const NOT_JSON = "the body is not JSON in UTF-8; send the report as JSON";
const NO_HOST = 'the body is not a report naming its host; send { "pop", "host", "periodStart", … } as JSON';
/** A body of exactly `bytes` bytes: the report, padded with JSON whitespace. */
const padded = (bytes: number) => {
  const text = JSON.stringify(report());
  return text + " ".repeat(bytes - text.length);
};

describe("admitReport", () => {
  it("accepts a report signed by its host within the window: the control every refusal below is a change of", () => {
    const body = JSON.stringify(report());
    const { outcome, asked } = admit({ body });
    expect(outcome).toEqual({ outcome: "accepted", report: report(), digest: reportDigest(body) });
    expect(asked).toEqual(["host1"]);
  });

  it.each<[string, Request, object?]>([
    ["the host's next period, starting where the last ended", { last: { periodStart: iso(NOW - 1205), periodEnd: iso(NOW - 605), digest: "x" } }],
    ["a period that ends after the last one decided", { decidedUntil: iso(NOW - 6) }],
    ["a period that ends after the last one decided, given in milliseconds", { decidedUntil: (NOW - 600) * 1000 }],
    ["a timestamp at the window's edge, behind", { body: JSON.stringify(report({ periodStart: iso(NOW - 1000), periodEnd: iso(NOW - 400) })), timestamp: NOW - DEFAULT_WINDOW_SECONDS }],
    ["a timestamp at the window's edge, ahead", { timestamp: NOW + DEFAULT_WINDOW_SECONDS }],
    ["a body of exactly the largest size", { body: padded(DEFAULT_MAX_BYTES) }],
    ["a body as bytes", { body: Buffer.from(JSON.stringify(report())) }],
    ["keys in a Map", { keys: new Map(Object.entries(KEYS)) }],
    ["headers as single-value lists", { headers: { [TIMESTAMP_HEADER]: [String(NOW)], [SIGNATURE_HEADER]: [sign(JSON.stringify(report()), KEYS.host1!, NOW)] } }],
    ["another host's report, with its own key", { body: JSON.stringify(report({ host: "host2" })), signer: "host2" }],
    ["a smaller window, with the timestamp inside it", { timestamp: NOW - 3 }, { windowSeconds: 10 }],
  ])("accepts %s", (_case, request, options) => {
    expect(admit(request, options).outcome.outcome).toBe("accepted");
  });

  const sameBody = JSON.stringify(report());
  const refusals: [string, RefusalReason, Request, string, object?][] = [
    ["a body one byte over the bound", "oversized", { body: padded(DEFAULT_MAX_BYTES + 1) }, `the body is ${DEFAULT_MAX_BYTES + 1} bytes, more than the ${DEFAULT_MAX_BYTES} a report may have; a report is a few hundred bytes`],
    ["a body over a smaller bound", "oversized", {}, `the body is ${sameBody.length} bytes, more than the 100 a report may have; a report is a few hundred bytes`, { maxBytes: 100 }],

    ["no timestamp", "forged", { headers: { [SIGNATURE_HEADER]: signed(sameBody)[SIGNATURE_HEADER] } }, "x-switch-vaas-timestamp is missing; every attempt carries x-switch-vaas-timestamp and x-switch-vaas-signature"],
    ["no signature", "forged", { headers: { [TIMESTAMP_HEADER]: String(NOW) } }, "x-switch-vaas-signature is missing; every attempt carries x-switch-vaas-timestamp and x-switch-vaas-signature"],
    ["no headers, for a body that is not JSON", "forged", { body: PLANTED, headers: {} }, "x-switch-vaas-timestamp is missing; every attempt carries x-switch-vaas-timestamp and x-switch-vaas-signature"],
    ["an empty header list", "forged", { headers: { ...signed(sameBody), [TIMESTAMP_HEADER]: [] } }, "x-switch-vaas-timestamp is missing; every attempt carries x-switch-vaas-timestamp and x-switch-vaas-signature"],
    ["two timestamps", "forged", { headers: { ...signed(sameBody), [TIMESTAMP_HEADER]: [String(NOW), String(NOW)] } }, "x-switch-vaas-timestamp is given more than once; send it once"],
    ["two signatures", "forged", { headers: { ...signed(sameBody), [SIGNATURE_HEADER]: [signed(sameBody)[SIGNATURE_HEADER], signed(sameBody)[SIGNATURE_HEADER]] } }, "x-switch-vaas-signature is given more than once; send it once"],
    // Node joins a repeated custom header's values with ", ".
    ["two timestamps joined by Node", "forged", { headers: { ...signed(sameBody), [TIMESTAMP_HEADER]: `${NOW}, ${NOW}` } }, "x-switch-vaas-timestamp is not a unix time in whole seconds; send the attempt's Math.floor(Date.now() / 1000)"],
    ["a timestamp in a second spelling", "forged", { headers: { ...signed(sameBody), [TIMESTAMP_HEADER]: `0${NOW}` } }, "x-switch-vaas-timestamp is not a unix time in whole seconds; send the attempt's Math.floor(Date.now() / 1000)"],
    ["a timestamp with a fraction", "forged", { headers: { ...signed(sameBody), [TIMESTAMP_HEADER]: `${NOW}.5` } }, "x-switch-vaas-timestamp is not a unix time in whole seconds; send the attempt's Math.floor(Date.now() / 1000)"],
    ["a negative timestamp", "forged", { headers: { ...signed(sameBody), [TIMESTAMP_HEADER]: "-1" } }, "x-switch-vaas-timestamp is not a unix time in whole seconds; send the attempt's Math.floor(Date.now() / 1000)"],
    ["a signature in upper case", "forged", { headers: { ...signed(sameBody), [SIGNATURE_HEADER]: signed(sameBody)[SIGNATURE_HEADER].toUpperCase() } }, 'x-switch-vaas-signature is not "sha256=" and 64 lower-case hex digits; send the HMAC-SHA256 of "<x-switch-vaas-timestamp>.<body>"'],
    ["a signature without its scheme", "forged", { headers: { ...signed(sameBody), [SIGNATURE_HEADER]: signed(sameBody)[SIGNATURE_HEADER].slice(7) } }, 'x-switch-vaas-signature is not "sha256=" and 64 lower-case hex digits; send the HMAC-SHA256 of "<x-switch-vaas-timestamp>.<body>"'],
    ["a signature with another host's key", "forged", { signer: "host2" }, NOT_VERIFIED],
    ["a signature with a key of no host", "forged", { key: PLANTED }, NOT_VERIFIED],
    ["a signature of another body", "forged", { body: JSON.stringify(report({ cpu: { capacityCores: 4, usedCores: 3 } })), headers: signed(sameBody) }, NOT_VERIFIED],
    ["a signature of another timestamp", "forged", { headers: { ...signed(sameBody), [TIMESTAMP_HEADER]: String(NOW - 1) } }, NOT_VERIFIED],
    // Authentication comes first: an unsigned caller learns nothing of the schema, the PoP or the store.
    ["an invalid report, unsigned", "forged", { body: JSON.stringify(report({ cpu: PLANTED })), key: PLANTED }, NOT_VERIFIED],
    ["another PoP's report, unsigned", "forged", { body: JSON.stringify(report({ pop: "graz" })), key: PLANTED }, NOT_VERIFIED],

    ["a host the PoP does not have", "unknown-host", { body: JSON.stringify(report({ host: "host9" })), key: PLANTED }, NOT_VERIFIED],
    ["a host of the PoP without a key", "unknown-host", { keys: { host2: KEYS.host2!, host3: KEYS.host3! } }, NOT_VERIFIED],
    ["a host with a key that is not in the PoP", "unknown-host", { pop: { name: "vienna", hosts: [{ name: "host2" }] } }, NOT_VERIFIED],
    ["a host with an empty key", "unknown-host", { keys: { ...KEYS, host1: "" }, key: "" }, NOT_VERIFIED],
    ["the host __proto__", "unknown-host", { body: JSON.stringify(report({ host: "__proto__" })), pop: { name: "vienna", hosts: [{ name: "__proto__" }] }, key: PLANTED }, NOT_VERIFIED],
    ["the host constructor", "unknown-host", { body: JSON.stringify(report({ host: "constructor" })), pop: { name: "vienna", hosts: [{ name: "constructor" }] }, key: PLANTED }, NOT_VERIFIED],

    ["a body that is not JSON", "malformed", { body: `{"host":"${PLANTED}"` }, NOT_JSON],
    ["a body that is not UTF-8", "malformed", { body: Buffer.from([0x7b, 0xff, 0x7d]) }, NOT_JSON],
    ["a body with a byte-order mark", "malformed", { body: `\uFEFF${sameBody}` }, NOT_JSON],
    ["a JSON list", "malformed", { body: JSON.stringify([report()]) }, NO_HOST],
    ["a report without a host", "malformed", { body: JSON.stringify({ ...report(), host: undefined }) }, NO_HOST],
    ["a host that is not a string", "malformed", { body: JSON.stringify(report({ host: 1 })) }, NO_HOST],
    ["an inherited host", "malformed", { body: '{"__proto__":{"host":"host1"}}' }, NO_HOST],
    [
      "a signed report that fails its schema, with a secret in a field",
      "malformed",
      { body: JSON.stringify(report({ cpu: { capacityCores: 4, usedCores: PLANTED }, network: { linkMbps: 1000, txMbps: -1 } })) },
      "report.cpu.usedCores, report.network.txMbps are not valid; see its schema, domain/wae/reports.ts",
    ],
    ["a signed report with a secret for a field name", "malformed", { body: JSON.stringify(report({ [PLANTED]: 1 })) }, "report (an unknown key) is not valid; see its schema, domain/wae/reports.ts"],
    ["a signed report of another PoP", "malformed", { body: JSON.stringify(report({ pop: "graz" })) }, 'report.pop is not "vienna", the PoP of this route; send each PoP\'s reports to its own /v1/pops/<pop>/reports'],
    [
      "a signed report whose period ends after it was sent",
      "malformed",
      { body: JSON.stringify(report({ periodEnd: iso(NOW + 1) })) },
      "report.periodEnd is later than x-switch-vaas-timestamp, the time the report was sent; a report covers a period that has ended",
    ],

    [
      "a timestamp one second past the window, behind",
      "replayed",
      { timestamp: NOW - DEFAULT_WINDOW_SECONDS - 1 },
      "x-switch-vaas-timestamp is 301 s behind the service's clock, more than the 300 s allowed; set the host's clock right (NTP) and sign each attempt at the time it is sent",
    ],
    [
      "a timestamp one second past the window, ahead",
      "replayed",
      { timestamp: NOW + DEFAULT_WINDOW_SECONDS + 1 },
      "x-switch-vaas-timestamp is 301 s ahead of the service's clock, more than the 300 s allowed; set the host's clock right (NTP) and sign each attempt at the time it is sent",
    ],
    [
      "a timestamp past a smaller window",
      "replayed",
      { timestamp: NOW - 11 },
      "x-switch-vaas-timestamp is 11 s behind the service's clock, more than the 10 s allowed; set the host's clock right (NTP) and sign each attempt at the time it is sent",
      { windowSeconds: 10 },
    ],

    [
      "a period that ended before the last one decided",
      "late",
      { decidedUntil: iso(NOW - 4) },
      `the period ended by ${iso(NOW - 4)}, when the last period the loop decided ended; a report reaches the service within its period's grace`,
    ],
    [
      "a period that ended as the last one decided did",
      "late",
      { decidedUntil: iso(NOW - 5) },
      `the period ended by ${iso(NOW - 5)}, when the last period the loop decided ended; a report reaches the service within its period's grace`,
    ],
    [
      "a period that starts before the last accepted one ended",
      "out-of-order",
      { last: { periodStart: iso(NOW - 1000), periodEnd: iso(NOW - 600), digest: "x" } },
      `the period starts before ${iso(NOW - 600)}, the end of the host's last accepted period; periods follow each other`,
    ],
    [
      "an earlier period, after a later one was accepted (a replay within the window)",
      "out-of-order",
      { last: { periodStart: iso(NOW - 5), periodEnd: iso(NOW + 595), digest: reportDigest(sameBody) } },
      `the period starts before ${iso(NOW + 595)}, the end of the host's last accepted period; periods follow each other`,
    ],
    [
      "a second, different report of the last accepted period",
      "conflict",
      { last: { periodStart: iso(NOW - 605), periodEnd: iso(NOW - 5), digest: reportDigest(JSON.stringify(report({ requests: { small: 11, large: 2, vod: 3, live: 0 } }))) } },
      `another report of the period from ${iso(NOW - 605)} was accepted already; a period is reported once`,
    ],
    [
      "a second report of the last period, with the same start in milliseconds",
      "conflict",
      { last: { periodStart: (NOW - 605) * 1000, periodEnd: (NOW - 300) * 1000, digest: "x" } },
      `another report of the period from ${iso(NOW - 605)} was accepted already; a period is reported once`,
    ],
  ];

  it.each(refusals)("refuses %s as %s", (_case, reason, request, detail, options) => {
    const { outcome, asked } = admit(request, options);
    expect(outcome).toEqual({ outcome: "refused", reason, status: REFUSAL_STATUS[reason], detail });
    expect(detail).not.toContain(PLANTED);
    // The store is read for authenticated, valid reports alone.
    expect(asked).toEqual(["late", "out-of-order", "conflict"].includes(reason) ? ["host1"] : []);
  });

  it("has a case above for every reason, with its status", () => {
    expect(new Set(refusals.map(([, reason]) => reason))).toEqual(new Set(REFUSAL_REASONS));
    expect(REFUSAL_STATUS).toEqual({ oversized: 413, malformed: 400, "unknown-host": 401, forged: 401, replayed: 401, late: 422, "out-of-order": 409, conflict: 409 });
  });

  it("answers a retry of the last accepted period as a duplicate, with a new timestamp, even once it is late", () => {
    const body = JSON.stringify(report());
    const last = { periodStart: iso(NOW - 605), periodEnd: iso(NOW - 5), digest: reportDigest(body) };
    expect(admit({ body, last, timestamp: NOW + 20 }).outcome).toEqual({ outcome: "duplicate" });
    expect(admit({ body, last, decidedUntil: iso(NOW) }).outcome).toEqual({ outcome: "duplicate" });
  });

  it("counts any valid report once: accepted, then every signed retry a duplicate", () => {
    const reports = fc.record({
      host: fc.constantFrom("host1", "host2", "host3"),
      start: fc.integer({ min: NOW - 86_400, max: NOW - 2 }),
      length: fc.integer({ min: 1, max: 3600 }),
      usedCores: fc.double({ min: 0, max: 4, noNaN: true }),
      small: fc.nat(),
      // A retry is sent after the first attempt, at most a window later by the service's clock.
      retryAt: fc.integer({ min: 0, max: DEFAULT_WINDOW_SECONDS }),
    });
    fc.assert(
      fc.property(reports, ({ host, start, length, usedCores, small, retryAt }) => {
        const end = Math.min(start + length, NOW - 1);
        const sent: InstanceManagerReport = { ...(report() as InstanceManagerReport), host, periodStart: iso(start), periodEnd: iso(end), cpu: { capacityCores: 4, usedCores }, requests: { small, large: 0, vod: 0, live: 0 } };
        const body = JSON.stringify(sent);
        const first = admit({ body, signer: host }).outcome;
        expect(first).toEqual({ outcome: "accepted", report: sent, digest: reportDigest(body) });
        const stored = { periodStart: sent.periodStart, periodEnd: sent.periodEnd, digest: reportDigest(body) };
        expect(admit({ body, signer: host, last: stored, timestamp: NOW + retryAt }).outcome).toEqual({ outcome: "duplicate" });
      }),
      { numRuns: 200 },
    );
  });

  it("never accepts a request whose body, signature or timestamp was changed after signing", () => {
    const body = Buffer.from(JSON.stringify(report()));
    const headers = signed(body.toString());
    const signature = headers[SIGNATURE_HEADER];
    const change = fc.oneof(
      // A byte of the body replaced by another, one inserted, or one removed.
      fc.record({ part: fc.constant("body" as const), at: fc.nat({ max: body.length - 1 }), byte: fc.integer({ min: 0, max: 255 }), how: fc.constantFrom("replace", "insert", "remove") }),
      fc.record({ part: fc.constant("signature" as const), at: fc.integer({ min: 7, max: signature.length - 1 }), byte: fc.constantFrom(..."0123456789abcdef".split("").map((c) => c.charCodeAt(0))), how: fc.constant("replace") }),
      fc.record({ part: fc.constant("timestamp" as const), at: fc.integer({ min: -DEFAULT_WINDOW_SECONDS, max: DEFAULT_WINDOW_SECONDS }).filter((skew) => skew !== 0), byte: fc.constant(0), how: fc.constant("replace") }),
    );
    const edit = (bytes: Buffer, at: number, byte: number, how: string) =>
      how === "insert"
        ? Buffer.concat([bytes.subarray(0, at), Buffer.from([byte]), bytes.subarray(at)])
        : how === "remove"
          ? Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)])
          : Buffer.concat([bytes.subarray(0, at), Buffer.from([byte]), bytes.subarray(at + 1)]);
    fc.assert(
      fc.property(change, ({ part, at, byte, how }) => {
        let request: Request;
        if (part === "body") {
          const changed = edit(body, at, byte, how);
          fc.pre(!changed.equals(body));
          request = { body: changed, headers };
        } else if (part === "signature") {
          const changed = edit(Buffer.from(signature), at, byte, how).toString();
          fc.pre(changed !== signature);
          request = { body, headers: { ...headers, [SIGNATURE_HEADER]: changed } };
        } else {
          // A time inside the window, so only the signature can refuse it.
          request = { body, headers: { ...headers, [TIMESTAMP_HEADER]: String(NOW + at) } };
        }
        // Even where the store holds the original, a changed request is no duplicate of it.
        const last = { periodStart: iso(NOW - 605), periodEnd: iso(NOW - 5), digest: reportDigest(body) };
        const { outcome } = admit({ ...request, last });
        expect(outcome.outcome).toBe("refused");
      }),
      { numRuns: 1000 },
    );
    // The control: the same request unchanged is taken.
    expect(admit({ body, headers }).outcome.outcome).toBe("accepted");
  });

  it.each<[string, Partial<ReportAdmissionInput>, object, string]>([
    ["a clock that is not a number", { nowSeconds: Number.NaN }, {}, "nowSeconds NaN is not a time; give Date.now() / 1000"],
    ["a window that is not a number", {}, { windowSeconds: Number.NaN }, "windowSeconds NaN is not a number of seconds; give e.g. 300"],
    ["a negative window", {}, { windowSeconds: -1 }, "windowSeconds -1 is not a number of seconds; give e.g. 300"],
    ["a bound of no bytes", {}, { maxBytes: 0 }, "maxBytes 0 is not a number of bytes; give e.g. 16384"],
    ["a store period that is not a time", { last: () => ({ periodStart: "yesterday", periodEnd: iso(NOW), digest: "x" }) }, {}, "last(host).periodStart is not a time; give ISO 8601 text or milliseconds since 1970"],
    ["a last decided period that is not a time", { decidedUntil: Number.NaN }, {}, "decidedUntil is not a time; give ISO 8601 text or milliseconds since 1970"],
  ])("throws for %s rather than admit by it", (_case, input, options, message) => {
    const body = JSON.stringify(report());
    const base: ReportAdmissionInput = { pop: POP, keys: KEYS, body, headers: signed(body), nowSeconds: NOW, last: () => undefined };
    expect(invalidArgumentsMessage(() => admitReport({ ...base, ...input }, options))).toBe(message);
  });

  it("digests the bytes, a string as its UTF-8", () => {
    // printf '%s' 'ä' | sha256sum
    expect(reportDigest("ä")).toBe("33e6d73fee82904c8d7afb78de1154d1e8dc2a0edb08120e63df5b9385c2d9cc");
    expect(reportDigest(Buffer.from("ä"))).toBe(reportDigest("ä"));
  });
});
