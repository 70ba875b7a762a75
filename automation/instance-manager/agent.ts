import { readFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import type { Role } from "../../domain/wae/model.ts";
import { type InstanceManagerReport, parseReport } from "../../domain/wae/reports.ts";
import { MAX_LINK_MBPS } from "../../domain/wae/schema.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from "../../domain/wae/signature.ts";
import { type CpuTimes, coresUsed, growth, interfaceNames, parseProcStat, parseStubStatus, parseTxBytes } from "./counters.ts";

/**
 * The instance manager on each PoP host (seed 002, "Instance Manager"): every period it reads the
 * host's CPU and its parent interface's transmitted bytes from /proc and each edge's request count
 * from its status endpoint, and sends the WAE a report of what changed since the last reading,
 * signed with the host's key.
 *
 * Nothing is counted twice: a report covers exactly the interval between two readings and is
 * built once; sending it again (after a failure) sends the same body, which the service
 * recognises by host and periodStart. One loop does everything, one step at a time (a reading,
 * or one send attempt, or a sleep until the next of them is due), so there is never more than one
 * send in flight: each report reaches the service once, oldest first, however the period compares
 * with the retry delays.
 */

export const DEFAULT_STAT_FILE = "/proc/stat";
export const DEFAULT_NET_DEV_FILE = "/proc/net/dev";
/** Ten minutes between readings. */
export const DEFAULT_PERIOD_SECONDS = 600;
export const MIN_PERIOD_SECONDS = 1;
/**
 * A day. Every sleep of the loop is at most one period, and Node's timers hold at most 2^31-1 ms
 * (24.8 days): beyond that they fire after 1 ms, which would send a report every millisecond.
 */
export const MAX_PERIOD_SECONDS = 86_400;
/** Five sends with doubling delays from one second ride out a service restart of a quarter minute. */
export const DEFAULT_MAX_ATTEMPTS = 5;
export const MAX_ATTEMPTS = 10;
export const DEFAULT_BASE_DELAY_MS = 1000;
/** The longest backoff is then 60 s × 2^8, about four hours: never longer than a wait for the next period. */
export const MAX_BASE_DELAY_MS = 60_000;
/** A day of ten-minute periods. */
export const DEFAULT_MAX_BUFFERED = 144;
/** A week of one-minute periods, about 5 MB of reports. */
export const MAX_BUFFERED = 10_080;
/** An edge's status page is local and tiny; one that takes longer is treated as not answering. */
const STATUS_TIMEOUT_MS = 5000;
/** One send attempt; the loop reads nothing meanwhile, so a reading is at most this late. */
const SEND_TIMEOUT_MS = 10_000;

export interface Edge {
  role: Role;
  /** The edge's stub_status URL, e.g. http://192.0.2.10/pop-status. */
  statusUrl: string;
}

export interface InstanceManagerOptions {
  pop: string;
  host: string;
  /** The interface the edges' traffic leaves by (the macvlan parent). */
  parentInterface: string;
  /** The parent interface's capacity in Mbit/s, more than 0 and at most MAX_LINK_MBPS. */
  linkMbps: number;
  edges: Edge[];
  /** Where reports go: the service's data collection endpoint. */
  endpoint: string;
  /** This host's HMAC key. */
  key: string;
  /** The kernel's CPU counters. Defaults to DEFAULT_STAT_FILE. */
  statFile?: string;
  /**
   * The host's interface counters. Defaults to DEFAULT_NET_DEV_FILE. In a container with the host's
   * /proc mounted at /host/proc, "/host/proc/1/net/dev" (the host's init, in the host's network).
   */
  netDevFile?: string;
  /** Seconds between readings, MIN_PERIOD_SECONDS to MAX_PERIOD_SECONDS. Defaults to DEFAULT_PERIOD_SECONDS. */
  periodSeconds?: number;
  /** Defaults to the system clock. Report times and signature timestamps come from it, and so does the schedule. */
  now?: () => Date;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Waits `ms` (at most one period); rejects, or returns early, once `signal` aborts. Defaults to node:timers' setTimeout. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Where the agent says what went wrong, one line at a time. Defaults to logLine (stderr). */
  log?: (line: string) => void;
  /** Sends per report before it waits for the next reading, 1 to MAX_ATTEMPTS. Defaults to DEFAULT_MAX_ATTEMPTS. */
  maxAttempts?: number;
  /** First retry delay in ms, doubled each time, 1 to MAX_BASE_DELAY_MS. Defaults to DEFAULT_BASE_DELAY_MS. */
  baseDelayMs?: number;
  /** Reports kept while the service is unreachable, 1 to MAX_BUFFERED; beyond, the oldest is dropped. Defaults to DEFAULT_MAX_BUFFERED. */
  maxBuffered?: number;
}

/** The process's log line: stderr, prefixed so that a PoP host's journal tells whose it is. */
export function logLine(line: string): void {
  console.error(`instance manager: ${line}`);
}

/** Which source of a reading is missing or unreadable: the option that names it. */
export type Source = "statFile" | "netDevFile" | "parentInterface";

/** A reading's source is missing or unreadable; `problem` says which file or interface and how to fix it. */
export class SourceError extends Error {
  readonly source: Source;
  readonly problem: string;

  constructor(source: Source, problem: string) {
    super(`${source} ${problem}`);
    this.source = source;
    this.problem = problem;
  }
}

/**
 * What the service's answer to a send means (its side of the protocol): 2xx, or 409 for a period
 * it already has, is delivered; 429 and 5xx may change on a retry; anything else (a 4xx, a
 * redirect) will not, so the report is dropped rather than hold every later one.
 */
export function answerOf(status: number): "delivered" | "retry" | "refused" {
  if ((status >= 200 && status < 300) || status === 409) {
    return "delivered";
  }
  return status === 429 || status >= 500 ? "retry" : "refused";
}

interface Reading {
  at: Date;
  cpu: CpuTimes;
  txBytes: number;
  /** stub_status request counters by status URL. */
  requests: Map<string, number>;
}

export interface PendingReport {
  report: InstanceManagerReport;
  /** The exact bytes sent, every attempt: signed anew with each attempt's timestamp. */
  body: string;
}

type SendOutcome = { kind: "delivered" } | { kind: "refused"; status: number } | { kind: "retry"; reason: string } | { kind: "stopped" };

export class InstanceManager {
  private previous: Reading | undefined;
  private readonly outbox: PendingReport[] = [];
  private started = false;
  private readonly periodMs: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxBuffered: number;
  private readonly now: () => Date;
  private readonly fetch: typeof fetch;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly log: (line: string) => void;

  private readonly options: InstanceManagerOptions;

  // No parameter properties: the image runs this file with Node's type stripping, which refuses them.
  constructor(options: InstanceManagerOptions) {
    const periodSeconds = options.periodSeconds ?? DEFAULT_PERIOD_SECONDS;
    const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    const baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
    const maxBuffered = options.maxBuffered ?? DEFAULT_MAX_BUFFERED;
    const problems = [
      ...wholeNumberIn("periodSeconds", periodSeconds, MIN_PERIOD_SECONDS, MAX_PERIOD_SECONDS),
      ...wholeNumberIn("maxAttempts", maxAttempts, 1, MAX_ATTEMPTS),
      ...wholeNumberIn("baseDelayMs", baseDelayMs, 1, MAX_BASE_DELAY_MS),
      ...wholeNumberIn("maxBuffered", maxBuffered, 1, MAX_BUFFERED),
      // The report's schema would refuse every period's report otherwise.
      ...(options.linkMbps > 0 && options.linkMbps <= MAX_LINK_MBPS ? [] : [`linkMbps ${options.linkMbps} is not more than 0 and at most ${MAX_LINK_MBPS}; give the link capacity in Mbit/s`]),
    ];
    if (problems.length > 0) {
      throw new InvalidArgumentsError(problems);
    }
    this.options = options;
    this.periodMs = periodSeconds * 1000;
    this.maxAttempts = maxAttempts;
    this.baseDelayMs = baseDelayMs;
    this.maxBuffered = maxBuffered;
    this.now = options.now ?? (() => new Date());
    this.fetch = options.fetch ?? fetch;
    this.sleep = options.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }));
    this.log = options.log ?? logLine;
  }

  /** Reports waiting to be delivered, oldest first. */
  get pending(): readonly PendingReport[] {
    return this.outbox;
  }

  /**
   * Reads now and then every period, and delivers the reports, until `signal` aborts; then
   * returns at once, abandoning a sleep or a send in flight. What is lost then is what only this
   * process holds: the reports waiting and the interval since the last reading (the service sees
   * a gap in the host's periods).
   *
   * Rejects with a SourceError when the first reading fails: a missing file or interface is the
   * configuration's fault and will not mend itself. Later failures of a reading are logged, and
   * the next reading covers the interval.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.started) {
      throw new Error("InstanceManager.run was called twice; one instance runs one loop");
    }
    this.started = true;
    this.previous = await this.read(signal);
    let nextReading = this.previous.at.getTime() + this.periodMs;
    /** The report at the head of the outbox: its failed sends since it last waited for a reading, and when to send it next. */
    let head: { pending: PendingReport; failures: number; at: number } | undefined;
    while (!signal.aborted) {
      const now = this.now().getTime();
      if (now >= nextReading) {
        await this.collect(signal);
        // A loop that fell a whole period behind (a long send) skips the missed readings: the next covers them.
        nextReading = nextReading + this.periodMs > now ? nextReading + this.periodMs : now + this.periodMs;
        continue;
      }
      const first = this.outbox[0];
      if (first !== undefined && head?.pending !== first) {
        head = { pending: first, failures: 0, at: now };
      }
      if (first !== undefined && head !== undefined && now >= head.at) {
        const outcome = await this.send(first, signal);
        if (outcome.kind === "delivered" || outcome.kind === "refused") {
          this.outbox.shift();
          head = undefined;
          if (outcome.kind === "refused") {
            this.log(`the service refused the report of period ${periodOf(first)} with HTTP ${outcome.status}${hintFor(outcome.status)}; dropped it`);
          }
        } else if (outcome.kind === "retry") {
          head.failures++;
          if (head.failures >= this.maxAttempts) {
            this.log(
              `the service has not taken the report of period ${periodOf(first)} after ${head.failures} attempts (last: ${outcome.reason}); ` +
                `${this.outbox.length} report(s) waiting, the next attempt after the next reading`,
            );
            head = { pending: first, failures: 0, at: nextReading };
          } else {
            head.at = now + this.baseDelayMs * 2 ** (head.failures - 1);
          }
        }
        continue;
      }
      const wake = first === undefined || head === undefined ? nextReading : Math.min(nextReading, head.at);
      // At most one period even if the wall clock went back, so no timer overflows; a clock stepped
      // back (rare, and by NTP seconds at most) delays the next reading until it catches up.
      const ms = Math.min(Math.max(wake - now, 0), this.periodMs);
      try {
        await this.sleep(ms, signal);
      } catch (error) {
        if (!signal.aborted) {
          throw error;
        }
      }
    }
  }

  /** One period: read, and queue the report of the change since the last reading. */
  private async collect(signal: AbortSignal): Promise<void> {
    let reading: Reading;
    try {
      reading = await this.read(signal);
    } catch (error) {
      if (!signal.aborted) {
        this.log(`no reading this period, the next one covers it: ${error instanceof Error ? error.message : String(error)}`);
      }
      return;
    }
    const previous = this.previous!;
    this.previous = reading;
    if (reading.at.getTime() <= previous.at.getTime()) {
      this.log(`the clock went back from ${previous.at.toISOString()} to ${reading.at.toISOString()}; the interval between is not reported`);
      return;
    }
    let pending: PendingReport;
    try {
      pending = this.reportBetween(previous, reading);
    } catch (error) {
      // The report's schema refused a measurement (more cores busy than the host has, say).
      this.log(`the period ${previous.at.toISOString()} to ${reading.at.toISOString()} is not reported: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    this.enqueue(pending);
  }

  private async read(signal: AbortSignal): Promise<Reading> {
    const statFile = this.options.statFile ?? DEFAULT_STAT_FILE;
    const netDevFile = this.options.netDevFile ?? DEFAULT_NET_DEV_FILE;
    const [stat, netDev] = await Promise.all([readSource("statFile", statFile), readSource("netDevFile", netDevFile)]);
    let cpu: CpuTimes;
    try {
      cpu = parseProcStat(stat);
    } catch (error) {
      throw new SourceError("statFile", `${JSON.stringify(statFile)} is not a /proc/stat (${(error as Error).message}); ${SOURCE_FIX.statFile}`);
    }
    const names = interfaceNames(netDev);
    if (!names.includes(this.options.parentInterface)) {
      throw new SourceError(
        "parentInterface",
        `${JSON.stringify(this.options.parentInterface)} is not in ${JSON.stringify(netDevFile)}, which lists ${names.length > 0 ? names.join(", ") : "no interface"}; ${SOURCE_FIX.parentInterface}`,
      );
    }
    let txBytes: number;
    try {
      txBytes = parseTxBytes(netDev, this.options.parentInterface);
    } catch (error) {
      throw new SourceError("netDevFile", `${JSON.stringify(netDevFile)} is not a /proc/net/dev (${(error as Error).message}); ${SOURCE_FIX.netDevFile}`);
    }
    const requests = new Map<string, number>();
    await Promise.all(
      this.options.edges.map(async (edge) => {
        try {
          const response = await this.fetch(edge.statusUrl, { signal: AbortSignal.any([signal, AbortSignal.timeout(STATUS_TIMEOUT_MS)]) });
          requests.set(edge.statusUrl, parseStubStatus(await response.text()).requests);
        } catch {
          // An edge that does not answer keeps its last count, so its next answer covers the gap.
          const last = this.previous?.requests.get(edge.statusUrl);
          if (last !== undefined) {
            requests.set(edge.statusUrl, last);
          }
        }
      }),
    );
    return { at: this.now(), cpu, txBytes, requests };
  }

  private reportBetween(before: Reading, after: Reading): PendingReport {
    const seconds = (after.at.getTime() - before.at.getTime()) / 1000;
    const requests = { small: 0, large: 0, vod: 0, live: 0 };
    for (const edge of this.options.edges) {
      const from = before.requests.get(edge.statusUrl);
      const to = after.requests.get(edge.statusUrl);
      if (from !== undefined && to !== undefined && to !== from) {
        // stub_status counts the status request that read it: one per reading, not a user's.
        requests[edge.role] += Math.max(0, growth(from, to) - 1);
      }
    }
    const report = parseReport({
      pop: this.options.pop,
      host: this.options.host,
      periodStart: before.at.toISOString(),
      periodEnd: after.at.toISOString(),
      cpu: { capacityCores: after.cpu.cores, usedCores: coresUsed(before.cpu, after.cpu) },
      network: { linkMbps: this.options.linkMbps, txMbps: seconds > 0 ? (growth(before.txBytes, after.txBytes) * 8) / seconds / 1e6 : 0 },
      requests,
    });
    return { report, body: JSON.stringify(report) };
  }

  private enqueue(pending: PendingReport): void {
    this.outbox.push(pending);
    // Beyond the limit the oldest period is the least useful to the next layout.
    for (const dropped of this.outbox.splice(0, Math.max(0, this.outbox.length - this.maxBuffered))) {
      this.log(`${this.maxBuffered} reports waiting: dropped the oldest, of period ${periodOf(dropped)}`);
    }
  }

  /** One send attempt, signed with the attempt's own timestamp. */
  private async send(pending: PendingReport, signal: AbortSignal): Promise<SendOutcome> {
    const timestamp = Math.floor(this.now().getTime() / 1000);
    try {
      const response = await this.fetch(this.options.endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: sign(pending.body, this.options.key, timestamp),
        },
        body: pending.body,
        // A redirect is an answer like any other: following it would send the report elsewhere.
        redirect: "manual",
        signal: AbortSignal.any([signal, AbortSignal.timeout(SEND_TIMEOUT_MS)]),
      });
      await response.body?.cancel();
      const answer = answerOf(response.status);
      return answer === "delivered" ? { kind: "delivered" } : answer === "refused" ? { kind: "refused", status: response.status } : { kind: "retry", reason: `HTTP ${response.status}` };
    } catch (error) {
      if (signal.aborted) {
        return { kind: "stopped" };
      }
      return { kind: "retry", reason: failureOf(error) };
    }
  }
}

const SOURCE_FIX: Record<Source, string> = {
  statFile: "give the path of the host's /proc/stat",
  netDevFile: 'give the path of the host\'s /proc/net/dev (in a container with the host\'s /proc at /host/proc, "/host/proc/1/net/dev")',
  parentInterface: "name the host interface the edges send through",
};

async function readSource(source: "statFile" | "netDevFile", path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new SourceError(source, `${JSON.stringify(path)} cannot be read (${code}); ${SOURCE_FIX[source]}`);
  }
}

function wholeNumberIn(field: string, value: number, min: number, max: number): string[] {
  return Number.isInteger(value) && value >= min && value <= max ? [] : [`${field} ${value} is not a whole number from ${min} to ${max}`];
}

function periodOf(pending: PendingReport): string {
  return `${pending.report.periodStart} to ${pending.report.periodEnd}`;
}

function hintFor(status: number): string {
  return status === 401 || status === 403 ? " (the service does not accept the signature: is the key this host's, and the host's clock right?)" : "";
}

/**
 * Why a send got no answer, without the endpoint: a URL can carry credentials, and fetch's
 * messages for a bad URL quote it.
 */
function failureOf(error: unknown): string {
  if (error instanceof Error && error.name === "TimeoutError") {
    return `no answer within ${SEND_TIMEOUT_MS / 1000} s`;
  }
  const cause = error instanceof Error ? (error.cause as NodeJS.ErrnoException | undefined) : undefined;
  return `unreachable (${cause?.code ?? (error instanceof Error ? error.name : "unknown error")})`;
}
