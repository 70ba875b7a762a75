import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InstanceManager, type InstanceManagerOptions, answerOf } from "../../automation/instance-manager/agent.ts";
import { parseReport } from "../../domain/wae/reports.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verify } from "../../domain/wae/signature.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

/**
 * The instance manager's delivery loop against a real HTTP receiver on 127.0.0.1, in virtual time:
 * its clock moves only when it sleeps, so a run of hours takes milliseconds and every row is
 * deterministic. The receiver plays the service's side of the protocol: it keeps each period once
 * by (host, periodStart) and answers a period it already has with 409.
 */

const LOCAL = "127.0.0.1";
const KEY = "host-key-of-host1";
const START = Date.parse("2026-11-23T10:00:00Z");
/** A runaway loop fails the test instead of flooding the receiver. */
const MAX_POSTS = 1000;

/** What the receiver does with a POST: keep the report, answer a status, or keep it and hang up before answering. */
type Answer = "keep" | "keep and hang up" | number;

interface Row {
  periodSeconds: number;
  maxAttempts: number;
  baseDelayMs: number;
  /** Virtual seconds to run for; the last reading is at the last whole period. */
  seconds: number;
  /** The answer to a POST at virtual second `t`, of the period with index `period`, its `attempt`th POST (from 1). */
  answer: (t: number, period: number, attempt: number) => Answer;
  /** Virtual seconds [from, to) in which nothing listens on the endpoint's port. */
  closed?: [number, number];
  /** POSTs the receiver sees of each period, by index. */
  posts: number[];
  /** Reports kept while the service does not take them. Defaults to the agent's default. */
  maxBuffered?: number;
  /** Periods never kept: refused for good, or dropped from a full buffer. All others must be kept, once each, in order. */
  lost?: number[];
  /** Each line the agent logs must match the pattern at its place. */
  logs: RegExp[];
}

const rows: [string, Row][] = [
  [
    "a retry window shorter than the period (429 while it lasts)",
    // Window 1 + 2 + 4 + 8 s < 60 s; the 429s cover the first three sends of the period from 60 s.
    { periodSeconds: 60, maxAttempts: 5, baseDelayMs: 1000, seconds: 600, answer: (t) => (t >= 110 && t < 125 ? 429 : "keep"), posts: [1, 4, 1, 1, 1, 1, 1, 1, 1, 1], logs: [] },
  ],
  [
    "a retry window longer than the period (503 while it lasts)",
    // Window 4 + 8 + 16 + 32 s > 10 s: the period from 0 s is sent at 10, 14, 22, 38 and 70 s while six
    // more periods are read; they wait behind it and go after it, once each.
    {
      periodSeconds: 10,
      maxAttempts: 5,
      baseDelayMs: 4000,
      seconds: 150,
      answer: (t) => (t >= 5 && t < 40 ? 503 : "keep"),
      posts: [5, ...Array<number>(14).fill(1)],
      logs: [],
    },
  ],
  [
    "a 401 endpoint",
    {
      periodSeconds: 60,
      maxAttempts: 5,
      baseDelayMs: 1000,
      seconds: 300,
      answer: () => 401,
      posts: [1, 1, 1, 1, 1],
      lost: [0, 1, 2, 3, 4],
      logs: [0, 1, 2, 3, 4].map((period) => new RegExp(`^the service refused the report of period ${iso(period * 60)} to ${iso(period * 60 + 60)} with HTTP 401 \\(.*key.*\\); dropped it$`)),
    },
  ],
  [
    "one period refused with 400 among accepted ones",
    { periodSeconds: 60, maxAttempts: 5, baseDelayMs: 1000, seconds: 300, answer: (_t, period) => (period === 1 ? 400 : "keep"), posts: [1, 1, 1, 1, 1], lost: [1], logs: [/^the service refused the report of period \S+T10:01:00\.000Z to \S+T10:02:00\.000Z with HTTP 400; dropped it$/] },
  ],
  [
    "a 5xx endpoint that recovers after three periods",
    // Each period's five sends fail until 200 s; the first report waits, its successors queue behind it.
    {
      periodSeconds: 60,
      maxAttempts: 5,
      baseDelayMs: 1000,
      seconds: 360,
      answer: (t) => (t < 200 ? 503 : "keep"),
      posts: [16, 1, 1, 1, 1, 1],
      logs: [1, 2, 3].map((waiting) => new RegExp(`^the service has not taken the report of period ${iso(0)} to ${iso(60)} after 5 attempts \\(last: HTTP 503\\); ${waiting} report\\(s\\) waiting, the next attempt after the next reading$`)),
    },
  ],
  [
    "an unreachable endpoint (a closed port) that comes back",
    {
      periodSeconds: 60,
      maxAttempts: 5,
      baseDelayMs: 1000,
      seconds: 360,
      closed: [0, 200],
      answer: () => "keep",
      posts: [1, 1, 1, 1, 1, 1],
      logs: [1, 2, 3].map((waiting) => new RegExp(`^the service has not taken the report of period ${iso(0)} to ${iso(60)} after 5 attempts \\(last: unreachable \\(ECONNREFUSED\\)\\); ${waiting} report\\(s\\) waiting`)),
    },
  ],
  [
    "a buffer of two through an outage of four periods: the oldest reports are dropped, and said so",
    {
      periodSeconds: 60,
      maxAttempts: 5,
      baseDelayMs: 1000,
      maxBuffered: 2,
      seconds: 360,
      closed: [0, 250],
      answer: () => "keep",
      posts: [0, 0, 1, 1, 1, 1],
      lost: [0, 1],
      logs: [
        new RegExp(`^the service has not taken the report of period ${iso(0)} to ${iso(60)} after 5 attempts .*; 1 report\\(s\\) waiting`),
        new RegExp(`^the service has not taken the report of period ${iso(0)} to ${iso(60)} after 5 attempts .*; 2 report\\(s\\) waiting`),
        new RegExp(`^2 reports waiting: dropped the oldest, of period ${iso(0)} to ${iso(60)}$`),
        new RegExp(`^the service has not taken the report of period ${iso(60)} to ${iso(120)} after 5 attempts .*; 2 report\\(s\\) waiting`),
        new RegExp(`^2 reports waiting: dropped the oldest, of period ${iso(60)} to ${iso(120)}$`),
      ],
    },
  ],
  [
    "a lost answer: the receiver kept the report and hung up, so the resend is answered 409",
    // The control: a second send of a kept period shows as a second POST and a 409, as a duplicate would.
    { periodSeconds: 60, maxAttempts: 5, baseDelayMs: 1000, seconds: 300, answer: (_t, period, attempt) => (period === 1 && attempt === 1 ? "keep and hang up" : "keep"), posts: [1, 2, 1, 1, 1], logs: [] },
  ],
];

function iso(second: number): string {
  return new Date(START + second * 1000).toISOString();
}

function procFiles(): { statFile: string; netDevFile: string } {
  const proc = mkdtempSync(join(tmpdir(), "im-delivery-"));
  mkdirSync(join(proc, "net"));
  writeFileSync(join(proc, "stat"), "cpu  100 0 50 850 0 0 0 0 0 0\ncpu0 100 0 50 850 0 0 0 0 0 0\n");
  writeFileSync(join(proc, "net", "dev"), "Inter-| Receive | Transmit\n face |bytes|bytes\n  eth0: 1 2 0 0 0 0 0 0 3000 4 0 0 0 0 0 0\n");
  return { statFile: join(proc, "stat"), netDevFile: join(proc, "net", "dev") };
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

interface Post {
  period: number;
  /** The receiver's answer; undefined when it hung up. */
  status: number | undefined;
}

/** Runs a manager per `row` until its virtual time is up; returns what the receiver saw and kept and what the agent logged. */
async function deliver(row: Row): Promise<{ posts: Post[]; kept: number[]; logs: string[]; pending: number; problems: string[] }> {
  let clock = START;
  const second = () => (clock - START) / 1000;
  const posts: Post[] = [];
  const kept: number[] = [];
  const problems: string[] = [];
  const logs: string[] = [];
  const stop = new AbortController();

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      const report = parseReport(JSON.parse(body));
      const period = (Date.parse(report.periodStart) - START) / 1000 / row.periodSeconds;
      const timestamp = String(request.headers[TIMESTAMP_HEADER]);
      if (timestamp !== String(Math.floor(clock / 1000))) {
        problems.push(`period ${period} sent with timestamp ${timestamp} at ${clock / 1000}`);
      }
      if (!verify(body, String(request.headers[SIGNATURE_HEADER]), timestamp, KEY)) {
        problems.push(`period ${period} sent with a signature that does not verify`);
      }
      const answer = row.answer(second(), period, posts.filter((post) => post.period === period).length + 1);
      if (posts.length >= MAX_POSTS) {
        problems.push(`more than ${MAX_POSTS} POSTs`);
        stop.abort();
      }
      if (typeof answer === "number") {
        posts.push({ period, status: answer });
        response.writeHead(answer).end();
        return;
      }
      // The service's side: a period it has already is answered 409, and delivered all the same.
      const status = kept.includes(period) ? 409 : 201;
      if (status === 201) {
        kept.push(period);
      }
      if (answer === "keep and hang up") {
        posts.push({ period, status: undefined });
        request.socket.destroy();
        return;
      }
      posts.push({ period, status });
      response.writeHead(status).end();
    });
  });
  const listen = (port = 0) => new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, LOCAL, () => resolve()));
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  await listen();
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  closers.push(async () => {
    if (server.listening) {
      await close();
    }
  });
  /** Opens or closes the port as `row.closed` says for the current virtual time. */
  const reconcile = async () => {
    const closed = row.closed !== undefined && second() >= row.closed[0] && second() < row.closed[1];
    if (closed && server.listening) {
      await close();
    } else if (!closed && !server.listening) {
      await listen(port);
    }
  };
  await reconcile();

  const manager = new InstanceManager({
    pop: "vienna",
    host: "host1",
    parentInterface: "eth0",
    linkMbps: 1000,
    edges: [],
    endpoint: `http://${LOCAL}:${port}/v1/pops/vienna/reports`,
    key: KEY,
    ...procFiles(),
    periodSeconds: row.periodSeconds,
    maxAttempts: row.maxAttempts,
    baseDelayMs: row.baseDelayMs,
    maxBuffered: row.maxBuffered,
    now: () => new Date(clock),
    sleep: async (ms) => {
      if (second() + ms / 1000 > row.seconds) {
        stop.abort();
        return;
      }
      clock += ms;
      await reconcile();
    },
    log: (line) => logs.push(line),
  });
  await manager.run(stop.signal);
  return { posts, kept, logs, pending: manager.pending.length, problems };
}

describe("the instance manager's delivery", () => {
  it.each(rows)("delivers every period once, oldest first, and logs each refusal: %s", async (_name, row) => {
    const { posts, kept, logs, pending, problems } = await deliver(row);
    const periods = Array.from({ length: row.posts.length }, (_, index) => index);

    expect(problems).toEqual([]);
    // Kept: every period not refused, once each, in order.
    expect(kept).toEqual(periods.filter((period) => !(row.lost ?? []).includes(period)));
    expect(pending).toBe(0);
    // Sent in order: a resend repeats the head; nothing goes back to an earlier period.
    expect(posts.map((post) => post.period)).toEqual([...posts.map((post) => post.period)].sort((a, b) => a - b));
    expect(periods.map((period) => posts.filter((post) => post.period === period).length)).toEqual(row.posts);
    // A 409 means a period was sent after the service had it: only after an answer was lost.
    expect(posts.filter((post) => post.status === 409).length).toBe(posts.filter((post) => post.status === undefined).length);
    expect(logs).toHaveLength(row.logs.length);
    logs.forEach((line, index) => expect(line).toMatch(row.logs[index]!));
    expect(logs.join("\n")).not.toContain(KEY);
    expect(logs.join("\n")).not.toContain("sha256=");
  });
});

describe("the service's answers", () => {
  it.each([
    [200, "delivered"],
    [201, "delivered"],
    [204, "delivered"],
    [409, "delivered"],
    [429, "retry"],
    [500, "retry"],
    [502, "retry"],
    [503, "retry"],
    [400, "refused"],
    [401, "refused"],
    [403, "refused"],
    [404, "refused"],
    [413, "refused"],
    [422, "refused"],
    [301, "refused"],
    [308, "refused"],
  ] as const)("HTTP %d: %s", (status, meaning) => {
    expect(answerOf(status)).toBe(meaning);
  });
});

describe("the instance manager's settings", () => {
  const valid: InstanceManagerOptions = { pop: "vienna", host: "host1", parentInterface: "eth0", linkMbps: 1000, edges: [], endpoint: "http://127.0.0.1:1/r", key: KEY };

  it.each([
    [{ periodSeconds: 86_401 }, "periodSeconds 86401 is not a whole number from 1 to 86400"],
    [{ periodSeconds: 0 }, "periodSeconds 0 is not a whole number from 1 to 86400"],
    [{ periodSeconds: 2.5 }, "periodSeconds 2.5 is not a whole number from 1 to 86400"],
    [{ maxAttempts: 0 }, "maxAttempts 0 is not a whole number from 1 to 10"],
    [{ maxAttempts: 11 }, "maxAttempts 11 is not a whole number from 1 to 10"],
    [{ baseDelayMs: 60_001 }, "baseDelayMs 60001 is not a whole number from 1 to 60000"],
    [{ maxBuffered: 0 }, "maxBuffered 0 is not a whole number from 1 to 10080"],
    [{ linkMbps: 0 }, "linkMbps 0 is not more than 0 and at most 800000; give the link capacity in Mbit/s"],
    [{ linkMbps: 800_001 }, "linkMbps 800001 is not more than 0 and at most 800000; give the link capacity in Mbit/s"],
  ] as const)("refuses %o", (bad, message) => {
    expect(invalidArgumentsMessage(() => new InstanceManager({ ...valid, ...bad }))).toBe(message);
  });

  it("takes the bounds themselves", () => {
    expect(() => new InstanceManager({ ...valid, periodSeconds: 86_400, maxAttempts: 10, baseDelayMs: 60_000, maxBuffered: 10_080, linkMbps: 800_000 })).not.toThrow();
    expect(() => new InstanceManager({ ...valid, periodSeconds: 1, maxAttempts: 1, baseDelayMs: 1, maxBuffered: 1 })).not.toThrow();
  });
});
