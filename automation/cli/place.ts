/**
 * `npm run place -- [options] <participant>...`: where the decision maker would put a conference,
 * and why. Participants are "lat,lon" or IP addresses. By default the clusters are the paper's
 * seven sites, empty.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DEFAULT_SITES, parseSites, siteCapacity } from "../../domain/contracts/testbed.ts";
import { type Participant, type Placement, SIZING_PROFILES, candidateClusters, parseCandidateClusters, parsePlacementRequest, placeConference } from "../../domain/decision/index.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { type IpLocation, MmdbIpLocator } from "../geolocation/ip-locator.ts";

const USAGE = `usage: npm run place -- [options] <participant>...
  participant          "lat,lon" (decimal degrees) or an IPv4/IPv6 address
  --expected N         participants to size for (default: as many as given)
  --last-n=N           video streams per participant, -1 for all (default: -1)
  --no-simulcast       senders send one quality (default: simulcast on)
  --objective O        mean | worstPair | pNN, e.g. p95 (default: mean)
  --profile P          sizing profile: ${Object.keys(SIZING_PROFILES).join(" | ")} (default: paper)
  --clusters FILE      JSON map of clusters as the testbed's clusters output, with free: { cpu, memory }
                       (default: the paper's seven sites, empty)
  --mmdb PATH          a MaxMind GeoIP2/GeoLite2 City database (default: DB-IP Lite, shipped)
  --use-low-confidence place participants whose address is only known by country, too
  --json               print the result as JSON`;

const OPTIONS = {
  expected: { type: "string" },
  "last-n": { type: "string", default: "-1" },
  "no-simulcast": { type: "boolean", default: false },
  objective: { type: "string", default: "mean" },
  profile: { type: "string", default: "paper" },
  clusters: { type: "string" },
  mmdb: { type: "string" },
  "use-low-confidence": { type: "boolean", default: false },
  json: { type: "boolean", default: false },
  help: { type: "boolean", default: false },
} as const;

let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];
let positionals: string[];
try {
  ({ values, positionals } = parseArgs({ allowPositionals: true, options: OPTIONS }));
} catch (error) {
  console.error(`${(error as Error).message}\n\n${USAGE}`);
  process.exit(2);
}

interface ParticipantReport {
  given: string;
  /** How the participant was located, or why not. */
  lookup: IpLocation | { status: "given" };
  placed: boolean;
}

async function place(): Promise<void> {
  const profile = SIZING_PROFILES[values.profile];
  if (profile === undefined) {
    throw new InvalidArgumentsError([`--profile "${values.profile}" is not a sizing profile; use ${Object.keys(SIZING_PROFILES).join(" or ")}`]);
  }
  const reports = await locate(positionals);
  const participants: Participant[] = reports.flatMap((report) => {
    if (!report.placed) {
      return [];
    }
    if (report.lookup.status === "given") {
      const [lat, lon] = report.given.split(",").map(Number);
      return [{ lat: lat!, lon: lon! }];
    }
    const { lat, lon, country } = report.lookup.location!;
    return [{ lat, lon, ...(country === undefined ? {} : { country }) }];
  });
  if (participants.length === 0) {
    throw new InvalidArgumentsError(["none of the participants could be located; give coordinates (lat,lon) for at least one"]);
  }

  const request = parsePlacementRequest(
    {
      participants,
      expectedParticipants: values.expected === undefined ? positionals.length : Number(values.expected),
      lastN: Number(values["last-n"]),
      simulcast: !values["no-simulcast"],
      objective: objectiveFrom(values.objective),
    },
    "request",
  );
  const clusters = parseCandidateClusters(values.clusters === undefined ? emptyPaperTestbed() : JSON.parse(readFileSync(values.clusters, "utf8")), "--clusters");
  const placement = placeConference(request, clusters, { profile });

  if (values.json) {
    console.log(JSON.stringify({ participants: reports, placement }, null, 2));
  } else {
    print(reports, request.expectedParticipants, request.lastN, request.simulcast, placement);
  }
}

const COORDINATES = /^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/;

async function locate(given: string[]): Promise<ParticipantReport[]> {
  const needsDatabase = given.some((entry) => !COORDINATES.test(entry));
  const locator = needsDatabase ? await MmdbIpLocator.open(values.mmdb === undefined ? {} : { path: values.mmdb }) : undefined;
  return given.map((entry) => {
    if (COORDINATES.test(entry)) {
      return { given: entry, lookup: { status: "given" }, placed: true };
    }
    const lookup = locator!.locate(entry);
    const placed = lookup.status === "located" || (lookup.status === "low-confidence" && values["use-low-confidence"]);
    return { given: entry, lookup, placed };
  });
}

function objectiveFrom(text: string): unknown {
  const percentile = /^p(\d+(\.\d+)?)$/.exec(text);
  return percentile === null ? text : { percentile: Number(percentile[1]) };
}

/** The paper's seven sites with all their capacity free. */
function emptyPaperTestbed(): unknown {
  return candidateClusters(Object.fromEntries(parseSites(DEFAULT_SITES, "sites").map((site) => [site.name, { location: site.location, capacity: siteCapacity(site) }])), []);
}

function print(reports: ParticipantReport[], expected: number, lastN: number, simulcast: boolean, placement: Placement): void {
  console.log("Participants:");
  for (const report of reports) {
    const { lookup } = report;
    const where =
      lookup.status === "given"
        ? "given as coordinates"
        : lookup.location === undefined
          ? ""
          : `${[lookup.location.city, lookup.location.country].filter(Boolean).join(", ")} (${lookup.location.lat.toFixed(2)}, ${lookup.location.lon.toFixed(2)})`;
    const why = lookup.status !== "given" && lookup.reason !== undefined ? ` — ${report.given} ${lookup.reason}` : "";
    console.log(`  ${report.given.padEnd(28)} ${lookup.status.padEnd(15)} ${report.placed ? "placed  " : "ignored "} ${where}${why}`);
  }
  const { size } = placement;
  console.log(
    `\nConference: ${expected} participants, last-N ${lastN < 0 ? "unlimited" : lastN}, simulcast ${simulcast ? "on" : "off"} → ` +
      `${size.cpu} CPU, ${size.memory} memory (bridge ${size.bridgeVcpu.toFixed(2)} vCPU at load; profile ${size.profile})`,
  );
  console.log(`Objective: ${placement.objective}\n`);
  console.log(`  ${"rank".padEnd(5)}${"cluster".padEnd(22)}${"objective".padStart(11)}${"mean".padStart(9)}${"worst pair".padStart(12)}  why not`);
  placement.ranking.forEach((entry, index) => {
    const ms = (value: number) => `${value.toFixed(1)} ms`;
    console.log(
      `  ${String(index + 1).padEnd(5)}${entry.cluster.padEnd(22)}${ms(entry.objectiveMs).padStart(11)}${ms(entry.meanRttMs).padStart(9)}${ms(entry.worstPairRttMs).padStart(12)}  ${entry.reason ?? ""}`,
    );
  });
  console.log(placement.cluster === null ? "\nNo cluster has room for this conference." : `\nPlaced on ${placement.cluster}.`);
}

try {
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    process.exitCode = values.help ? 0 : 2;
  } else {
    await place();
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
