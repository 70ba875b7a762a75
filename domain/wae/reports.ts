import { z } from "zod";
import { expected, parseOrThrow } from "../validation.ts";
import { type Host, type RoleCounts, mapRoles } from "./model.ts";
import { MAX_LINK_MBPS, nonNegative, requestCounts } from "./schema.ts";

/**
 * The data collection module: what an instance manager reports for its host every period
 * (seed 002, "Instance Manager"), validated, and the reports of a period combined into the
 * orchestration's input.
 */

const instant = z.iso.datetime({
  offset: true,
  error: (issue) =>
    typeof issue.input === "string"
      ? `${JSON.stringify(issue.input)} is not an ISO 8601 time; give e.g. "2026-11-23T10:00:00Z"`
      : expected("a string", 'give an ISO 8601 time, e.g. "2026-11-23T10:00:00Z"')(issue),
});

const instanceManagerReport = z
  .strictObject(
    {
      pop: z.string({ error: expected("a string", "name the PoP") }).min(1, { error: "is empty; name the PoP" }),
      host: z.string({ error: expected("a string", "name the host") }).min(1, { error: "is empty; name the host" }),
      periodStart: instant,
      periodEnd: instant,
      cpu: z.strictObject(
        {
          capacityCores: nonNegative("number of cores").refine((cores) => cores > 0, { error: "is 0; give the host's number of cores" }),
          usedCores: nonNegative("average cores in use over the period"),
        },
        { error: expected("a map", "give { capacityCores, usedCores }") },
      ),
      network: z.strictObject(
        {
          linkMbps: nonNegative("link capacity in Mbit/s")
            .refine((mbps) => mbps > 0, { error: "is 0; give the link capacity in Mbit/s" })
            .refine((mbps) => mbps <= MAX_LINK_MBPS, { error: (issue) => `${String(issue.input)} is more than ${MAX_LINK_MBPS}; give the link capacity in Mbit/s (not kbit/s)` }),
          txMbps: nonNegative("average transmitted Mbit/s over the period"),
        },
        { error: expected("a map", "give { linkMbps, txMbps }") },
      ),
      requests: requestCounts,
    },
    { error: expected("a map", "give { pop, host, periodStart, periodEnd, cpu, network, requests }") },
  )
  .superRefine((report, ctx) => {
    if (Date.parse(report.periodEnd) <= Date.parse(report.periodStart)) {
      ctx.addIssue({ code: "custom", path: ["periodEnd"], message: "is not after periodStart; a period ends after it starts" });
    }
    // Averages over a period can exceed capacity only through a measurement error.
    if (report.cpu.usedCores > report.cpu.capacityCores * 1.05) {
      ctx.addIssue({ code: "custom", path: ["cpu", "usedCores"], message: `${report.cpu.usedCores} is more than the ${report.cpu.capacityCores} cores the host has` });
    }
  });

export type InstanceManagerReport = z.output<typeof instanceManagerReport>;

/** Validates a report; errors name each bad field under `keyPrefix` and say how to fix it. */
export function parseReport(value: unknown, keyPrefix = "report"): InstanceManagerReport {
  return parseOrThrow(instanceManagerReport, value, keyPrefix);
}

/**
 * A period's reports as the orchestration's hosts and requests: per host, CPU and traffic averaged
 * over its reports weighted by their length; requests summed over hosts and reports (each edge
 * counts a request once, in the period it was served), in all and per host.
 */
export function combineReports(reports: readonly InstanceManagerReport[]): { hosts: Host[]; requests: RoleCounts; served: Record<string, RoleCounts> } {
  const byHost = new Map<string, InstanceManagerReport[]>();
  for (const report of reports) {
    byHost.set(report.host, [...(byHost.get(report.host) ?? []), report]);
  }
  const hosts = [...byHost.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, own]) => {
      const seconds = own.map((report) => (Date.parse(report.periodEnd) - Date.parse(report.periodStart)) / 1000);
      const total = seconds.reduce((sum, value) => sum + value, 0);
      const average = (value: (report: InstanceManagerReport) => number) => own.reduce((sum, report, index) => sum + value(report) * seconds[index]!, 0) / total;
      const latest = own.reduce((a, b) => (Date.parse(b.periodEnd) > Date.parse(a.periodEnd) ? b : a));
      return {
        name,
        cpu: { capacityCores: latest.cpu.capacityCores, usedCores: average((report) => report.cpu.usedCores) },
        network: { linkMbps: latest.network.linkMbps, txMbps: average((report) => report.network.txMbps) },
      };
    });
  const requests = mapRoles((role) => reports.reduce((sum, report) => sum + report.requests[role], 0));
  // What each host's edges served: what tells its background load from theirs (capacity.ts).
  const served = Object.fromEntries([...byHost].map(([name, own]) => [name, mapRoles((role) => own.reduce((sum, report) => sum + report.requests[role], 0))]));
  return { hosts, requests, served };
}
