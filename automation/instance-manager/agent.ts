import { readFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import type { Role } from "../../domain/wae/model.ts";
import { type InstanceManagerReport, parseReport } from "../../domain/wae/reports.ts";
import { SIGNATURE_HEADER, sign } from "../../domain/wae/signature.ts";
import { type CpuTimes, coresUsed, growth, parseProcStat, parseStubStatus, parseTxBytes } from "./counters.ts";

/**
 * The instance manager on each PoP host (seed 002, "Instance Manager"): every period it reads the
 * host's CPU and its parent interface's transmitted bytes from /proc and each edge's request count
 * from its status endpoint, and sends the WAE a report of what changed since the last reading,
 * signed with the host's key.
 *
 * Nothing is counted twice: a report covers exactly the interval between two readings and is
 * built once; sending it again (after a failure) sends the same bytes, which the service
 * recognises by pop, host and periodStart. Reports wait in order while the service is unreachable.
 */

export const DEFAULT_STAT_FILE = "/proc/stat";
export const DEFAULT_NET_DEV_FILE = "/proc/net/dev";
/** Five sends with doubling delays from one second ride out a service restart of half a minute. */
export const DEFAULT_MAX_ATTEMPTS = 5;
export const DEFAULT_BASE_DELAY_MS = 1000;
/** A day of ten-minute periods. */
export const DEFAULT_MAX_BUFFERED = 144;
/** An edge's status page is local and tiny; one that takes longer is treated as not answering. */
const STATUS_TIMEOUT_MS = 5000;
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
  /** Defaults to the system clock. */
  now?: () => Date;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Defaults to setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  /** Sends per report before it waits for the next period. Defaults to DEFAULT_MAX_ATTEMPTS. */
  maxAttempts?: number;
  /** First retry delay in ms, doubled each time. Defaults to DEFAULT_BASE_DELAY_MS. */
  baseDelayMs?: number;
  /** Reports kept while the service is unreachable; the oldest go first. Defaults to DEFAULT_MAX_BUFFERED. */
  maxBuffered?: number;
}

interface Reading {
  at: Date;
  cpu: CpuTimes;
  txBytes: number;
  /** stub_status request counters by status URL. */
  requests: Map<string, number>;
}

export interface SignedReport {
  report: InstanceManagerReport;
  body: string;
  signature: string;
}

export class InstanceManager {
  private previous: Reading | undefined;
  private readonly outbox: SignedReport[] = [];
  /** Reports the service refused for good (a client error other than 409 or 429), with its status. */
  readonly rejected: { report: SignedReport; status: number }[] = [];
  private readonly now: () => Date;
  private readonly fetch: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;

  private readonly options: InstanceManagerOptions;

  // No parameter properties: the image runs this file with Node's type stripping, which refuses them.
  constructor(options: InstanceManagerOptions) {
    this.options = options;
    this.now = options.now ?? (() => new Date());
    this.fetch = options.fetch ?? fetch;
    this.sleep = options.sleep ?? ((ms) => delay(ms));
  }

  /** Reports waiting to be delivered, oldest first. */
  get pending(): readonly SignedReport[] {
    return this.outbox;
  }

  /** One period: read, report the change since the last reading (none the first time), deliver. */
  async tick(): Promise<void> {
    const reading = await this.read();
    if (this.previous !== undefined) {
      this.enqueue(this.reportBetween(this.previous, reading));
    }
    this.previous = reading;
    await this.flush();
  }

  /** Delivers waiting reports in order; stops while the service is unreachable. */
  async flush(): Promise<void> {
    while (this.outbox.length > 0) {
      const outcome = await this.deliver(this.outbox[0]!);
      if (outcome === "unreachable") {
        return;
      }
      const sent = this.outbox.shift()!;
      if (outcome !== "delivered") {
        // Resending cannot change the answer; holding it would hold every later report too.
        this.rejected.push({ report: sent, status: outcome });
      }
    }
  }

  private async read(): Promise<Reading> {
    const [stat, netDev] = await Promise.all([readFile(this.options.statFile ?? DEFAULT_STAT_FILE, "utf8"), readFile(this.options.netDevFile ?? DEFAULT_NET_DEV_FILE, "utf8")]);
    const requests = new Map<string, number>();
    await Promise.all(
      this.options.edges.map(async (edge) => {
        try {
          const response = await this.fetch(edge.statusUrl, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
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
    return { at: this.now(), cpu: parseProcStat(stat), txBytes: parseTxBytes(netDev, this.options.parentInterface), requests };
  }

  private reportBetween(before: Reading, after: Reading): SignedReport {
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
    const body = JSON.stringify(report);
    return { report, body, signature: sign(body, this.options.key) };
  }

  private enqueue(signed: SignedReport): void {
    this.outbox.push(signed);
    const limit = this.options.maxBuffered ?? DEFAULT_MAX_BUFFERED;
    // Beyond the limit the oldest period is the least useful to the next layout.
    this.outbox.splice(0, Math.max(0, this.outbox.length - limit));
  }

  /**
   * Sends one report with retries and exponential backoff: "delivered" once the service has it,
   * the status of a refusal that a retry cannot change, or "unreachable" after the last attempt.
   */
  private async deliver(signed: SignedReport): Promise<"delivered" | "unreachable" | number> {
    const attempts = this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) {
        await this.sleep((this.options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS) * 2 ** (attempt - 1));
      }
      try {
        const response = await this.fetch(this.options.endpoint, {
          method: "POST",
          headers: { "content-type": "application/json", [SIGNATURE_HEADER]: signed.signature },
          body: signed.body,
          signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
        });
        await response.body?.cancel();
        // 409: the service has this period already (an earlier send arrived); it is delivered.
        if (response.ok || response.status === 409) {
          return "delivered";
        }
        if (response.status >= 400 && response.status < 500 && response.status !== 429) {
          return response.status;
        }
      } catch {
        // Unreachable or timed out: retry.
      }
    }
    return "unreachable";
  }
}
