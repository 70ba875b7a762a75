/**
 * `npm run place -- [options] <participant>...`: where the decision maker would put a conference,
 * and why. Participants are "lat,lon" or IP addresses, on the command line or in a file. By default
 * the clusters are the paper's seven sites, empty.
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { DEFAULT_SITES, parseSites, siteCapacity } from "../../domain/contracts/testbed.ts";
import { type Participant, type Placement, SIZING_PROFILES, candidateClusters, parseCandidateClusters, parsePlacementRequest, placeConference } from "../../domain/decision/index.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { type IpLocation, MmdbIpLocator, isIpAddress } from "../geolocation/ip-locator.ts";
import { exitWithUsageError, parseCommandLine } from "./command-line.ts";

const USAGE = `usage: npm run place -- [options] <participant>...
  participant          "lat,lon" (decimal degrees, e.g. -33.92,18.42) or an IPv4/IPv6 address
  --participants FILE  more participants, separated by spaces or newlines ("-": standard input); for
                       more than a few thousand, since npm hands the whole command line to sh as
                       one argument, which Linux limits to 128 KiB
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
  participants: { type: "string" },
  expected: { type: "string" },
  "last-n": { type: "string", default: "-1" },
  "no-simulcast": { type: "boolean", default: false },
  objective: { type: "string", default: "mean" },
  profile: { type: "string", default: "paper" },
  clusters: { type: "string" },
  mmdb: { type: "string" },
  "use-low-confidence": { type: "boolean", default: false },
  json: { type: "boolean", default: false },
} as const;

const COMMAND_LINE = { name: "place", usage: USAGE, options: OPTIONS };

const COORDINATES = /^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/;
const WHOLE_NUMBER = /^-?\d+$/;

type Values = ReturnType<typeof parseCommandLine<typeof OPTIONS>>["values"];

/**
 * The command line, with every "lat,lon" token a participant: parseArgs would read a negative
 * latitude ("-33.9,18.4") as options, so such tokens are set aside before it runs and put back in
 * their places among the positionals after.
 */
function parseWithCoordinates(argv: readonly string[]): { values: Values; positionals: string[] } {
  const end = argv.indexOf("--");
  const participants: { at: number; value: string }[] = [];
  const rest: { at: number; token: string }[] = [];
  argv.forEach((token, at) => {
    if ((end === -1 || at < end) && token.startsWith("-") && COORDINATES.test(token)) {
      participants.push({ at, value: token });
    } else {
      rest.push({ at, token });
    }
  });
  const { values, tokens } = parseCommandLine(COMMAND_LINE, rest.map((entry) => entry.token));
  for (const token of tokens) {
    if (token.kind === "positional") {
      participants.push({ at: rest[token.index]!.at, value: token.value });
    }
  }
  return { values, positionals: participants.sort((a, b) => a.at - b.at).map((entry) => entry.value) };
}

const { values, positionals } = parseWithCoordinates(process.argv.slice(2));

interface ParticipantReport {
  given: string;
  /** How the participant was located, or why not. */
  lookup: IpLocation | { status: "given" };
  placed: boolean;
}

/** Request fields as the flags that set them, so that a refusal names what the user typed. */
const FLAGS: Readonly<Record<string, string>> = { expectedParticipants: "--expected", lastN: "--last-n", simulcast: "--no-simulcast", objective: "--objective" };

async function place(given: string[]): Promise<void> {
  const profile = SIZING_PROFILES[values.profile];
  if (profile === undefined) {
    throw new InvalidArgumentsError([`--profile "${values.profile}" is not a sizing profile; use ${Object.keys(SIZING_PROFILES).join(" or ")}`]);
  }
  const notParticipants = given.filter((entry) => !COORDINATES.test(entry) && !isIpAddress(entry));
  if (notParticipants.length > 0) {
    throw new InvalidArgumentsError(
      notParticipants.map((entry) => `participant ${JSON.stringify(entry)} is neither "lat,lon" nor an IPv4 or IPv6 address; give e.g. 46.05,14.51 or 193.2.1.66`),
    );
  }
  const expectedParticipants = values.expected === undefined ? given.length : wholeNumber("--expected", values.expected, "give the number of participants to size for, e.g. --expected 20");
  const lastN = wholeNumber("--last-n", values["last-n"], "give -1 (unlimited) or a number of video streams, e.g. --last-n=5");
  const objective = objectiveFrom(values.objective);

  const reports = await locate(given);
  const placed = reports.filter((report) => report.placed);
  if (placed.length === 0) {
    throw new InvalidArgumentsError([
      "none of the participants could be located; give coordinates (lat,lon) for at least one",
      ...reports.map((report) => `participant ${report.given} ${whyNotPlaced(report)}`),
    ]);
  }
  const participants: Participant[] = placed.map((report) => {
    if (report.lookup.status === "given") {
      const [lat, lon] = report.given.split(",").map(Number);
      return { lat: lat!, lon: lon! };
    }
    const { lat, lon, country } = report.lookup.location!;
    return { lat, lon, ...(country === undefined ? {} : { country }) };
  });

  const request = asFlags(
    () => parsePlacementRequest({ participants, expectedParticipants, lastN, simulcast: !values["no-simulcast"], objective }, "request"),
    (key) => {
      const [, field, index, rest = ""] = /^request\.(\w+)(?:\[(\d+)\])?(.*)$/.exec(key) ?? [];
      if (field === "participants" && index !== undefined) {
        return `participant ${placed[Number(index)]!.given}:${rest.replace(/^\./, " ")}`;
      }
      return field === undefined ? key : (FLAGS[field] ?? key);
    },
  );
  const clusters = values.clusters === undefined ? parseCandidateClusters(emptyPaperTestbed(), "clusters") : clustersFile(values.clusters);
  const placement = placeConference(request, clusters, { profile });

  if (values.json) {
    console.log(JSON.stringify({ participants: reports, placement }, null, 2));
  } else {
    print(reports, request.expectedParticipants, request.lastN, request.simulcast, placement);
  }
}

/** Runs `parse`; a refusal comes back with each line's key rewritten by `rename` (to the flag the user typed). */
function asFlags<T>(parse: () => T, rename: (key: string) => string): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof InvalidArgumentsError)) {
      throw error;
    }
    throw new InvalidArgumentsError(
      error.problems.map((problem) => {
        const space = problem.indexOf(" ");
        return `${rename(problem.slice(0, space))}${problem.slice(space)}`;
      }),
    );
  }
}

function wholeNumber(flag: string, text: string, fix: string): number {
  if (!WHOLE_NUMBER.test(text)) {
    throw new InvalidArgumentsError([`${flag} ${JSON.stringify(text)} is not a whole number; ${fix}`]);
  }
  return Number(text);
}

function objectiveFrom(text: string): unknown {
  if (text === "mean" || text === "worstPair") {
    return text;
  }
  const percentile = /^p(\d+(\.\d+)?)$/.exec(text);
  if (percentile === null) {
    throw new InvalidArgumentsError([`--objective ${JSON.stringify(text)} is not an objective; use mean, worstPair or pNN (a percentile, e.g. p95)`]);
  }
  return { percentile: Number(percentile[1]) };
}

function whyNotPlaced({ lookup }: ParticipantReport): string {
  // Only looked-up participants go unplaced; coordinates are always placed.
  const reason = lookup.status === "given" ? "" : (lookup.reason ?? `is ${lookup.status}`);
  return lookup.status === "low-confidence"
    ? `${reason}; pass --use-low-confidence to place it there anyway, or give its coordinates`
    : `${reason}; give its coordinates (lat,lon) instead`;
}

/**
 * Text of the file a flag names (standard input for "-"), relative to where npm was run (it runs
 * scripts in the package's directory); refusals name the flag and the file, never its contents.
 */
function readFlagFile(flag: string, path: string, what: string): string {
  try {
    return readFileSync(path === "-" ? 0 : fromInvocation(path), "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new InvalidArgumentsError([`${flag} ${code === "ENOENT" ? "does not exist" : `cannot be read (${code})`}; give ${what}`]);
  }
}

function readJson(flag: string, path: string, what: string): unknown {
  const text = readFlagFile(flag, path, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    // Where, but not what: the file may be a stack output with kubeconfigs in it.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    const before = position === undefined ? undefined : text.slice(0, Number(position)).split("\n");
    const where = before === undefined ? "" : ` at line ${before.length}, column ${before.at(-1)!.length + 1}`;
    throw new InvalidArgumentsError([`${flag} is not JSON${where}; give ${what}`]);
  }
}

/** The clusters of --clusters FILE; refusals name the flag and the file, then the key in it. */
function clustersFile(path: string): ReturnType<typeof parseCandidateClusters> {
  const flag = `--clusters ${path}`;
  const value = readJson(flag, path, "a JSON map of clusters as the testbed's clusters output, with free: { cpu, memory }");
  return asFlags(
    () => parseCandidateClusters(value, "clusters"),
    (key) => `${flag}: ${key}`,
  );
}

/** The participants of --participants FILE, separated by whitespace. */
function participantsFile(path: string): string[] {
  return readFlagFile(`--participants ${path}`, path, 'a file of participants, "lat,lon" or IP addresses separated by spaces or newlines')
    .split(/\s+/)
    .filter((entry) => entry !== "");
}

async function openLocator(): Promise<MmdbIpLocator> {
  const path = values.mmdb;
  if (path === undefined) {
    return MmdbIpLocator.open();
  }
  const what = "a MaxMind GeoIP2/GeoLite2 City database (.mmdb), or leave --mmdb out for the shipped DB-IP Lite";
  const stat = statSync(fromInvocation(path), { throwIfNoEntry: false });
  if (stat === undefined) {
    throw new InvalidArgumentsError([`--mmdb ${path} does not exist; give ${what}`]);
  }
  if (!stat.isFile()) {
    throw new InvalidArgumentsError([`--mmdb ${path} is not a file; give ${what}`]);
  }
  try {
    return await MmdbIpLocator.open({ path: fromInvocation(path) });
  } catch {
    throw new InvalidArgumentsError([`--mmdb ${path} is not a MaxMind database; give ${what}`]);
  }
}

function fromInvocation(path: string): string {
  return resolve(process.env.INIT_CWD ?? ".", path);
}

async function locate(given: string[]): Promise<ParticipantReport[]> {
  const locator = given.some((entry) => !COORDINATES.test(entry)) ? await openLocator() : undefined;
  return given.map((entry) => {
    if (COORDINATES.test(entry)) {
      return { given: entry, lookup: { status: "given" }, placed: true };
    }
    const lookup = locator!.locate(entry);
    const placed = lookup.status === "located" || (lookup.status === "low-confidence" && values["use-low-confidence"]);
    return { given: entry, lookup, placed };
  });
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
  const given = [...positionals, ...(values.participants === undefined ? [] : participantsFile(values.participants))];
  if (given.length === 0) {
    exitWithUsageError(COMMAND_LINE, ['give at least one participant, "lat,lon" or an IP address, or a file of them with --participants']);
  }
  await place(given);
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
