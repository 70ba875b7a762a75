/**
 * What the instance manager reads, parsed: the kernel's CPU and network counters and nginx's
 * stub_status. All cumulative; reports are differences between two readings.
 */

export interface CpuTimes {
  /** Jiffies spent not working (idle + iowait). */
  idle: number;
  /** All jiffies. */
  total: number;
  /** Logical CPUs. */
  cores: number;
}

/** /proc/stat: the aggregate "cpu" line (user nice system idle iowait irq softirq steal …) and the cpuN lines. */
export function parseProcStat(text: string): CpuTimes {
  const lines = text.split("\n");
  const aggregate = lines.find((line) => /^cpu\s/.test(line));
  if (aggregate === undefined) {
    throw new Error("/proc/stat has no aggregate cpu line");
  }
  const fields = aggregate.trim().split(/\s+/).slice(1).map(Number);
  // guest and guest_nice are already counted in user and nice.
  const counted = fields.slice(0, 8);
  const total = counted.reduce((sum, value) => sum + value, 0);
  const idle = (counted[3] ?? 0) + (counted[4] ?? 0);
  const cores = lines.filter((line) => /^cpu\d+\s/.test(line)).length;
  return { idle, total, cores };
}

/** Cores busy on average between two readings. */
export function coresUsed(before: CpuTimes, after: CpuTimes): number {
  const total = after.total - before.total;
  if (total <= 0) {
    return 0;
  }
  return ((total - (after.idle - before.idle)) / total) * after.cores;
}

/** /proc/net/dev: bytes transmitted by `iface` (the 9th counter after the name). */
export function parseTxBytes(text: string, iface: string): number {
  for (const line of text.split("\n")) {
    const [name, counters] = line.split(":");
    if (name?.trim() === iface && counters !== undefined) {
      const fields = counters.trim().split(/\s+/).map(Number);
      const tx = fields[8];
      if (tx === undefined || Number.isNaN(tx)) {
        break;
      }
      return tx;
    }
  }
  throw new Error(`/proc/net/dev has no counters for interface "${iface}"`);
}

/** The interfaces /proc/net/dev lists, in its order (lines "<name>: <counters>"). */
export function interfaceNames(text: string): string[] {
  return text
    .split("\n")
    .filter((line) => line.includes(":"))
    .map((line) => line.split(":")[0]!.trim())
    .filter((name) => name !== "");
}

export interface StubStatus {
  active: number;
  accepts: number;
  handled: number;
  /** Requests served since nginx started, this status request included. */
  requests: number;
}

/** nginx's stub_status page. */
export function parseStubStatus(text: string): StubStatus {
  const active = /Active connections:\s*(\d+)/.exec(text);
  const counters = /server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)/.exec(text);
  if (active === null || counters === null) {
    throw new Error(`not an nginx stub_status page: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return { active: Number(active[1]), accepts: Number(counters[1]), handled: Number(counters[2]), requests: Number(counters[3]) };
}

/**
 * How much a cumulative counter grew. A counter that went down was reset (nginx restarted, an
 * interface came back): everything it now shows is new.
 */
export function growth(before: number, after: number): number {
  return after >= before ? after - before : after;
}
