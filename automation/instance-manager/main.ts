/**
 * The instance manager's process, as its container runs it: configuration from the environment
 * (validated, its /proc sources read once before anything else), one report per period, and a
 * stop on SIGTERM within a second or two, well inside a container runtime's stop timeout (docker's
 * default is 10 s).
 */
import { z } from "zod";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { expected, parseOrThrow } from "../../domain/validation.ts";
import { ROLES } from "../../domain/wae/model.ts";
import { MAX_LINK_MBPS } from "../../domain/wae/schema.ts";
import { DEFAULT_PERIOD_SECONDS, InstanceManager, MAX_PERIOD_SECONDS, type Source, SourceError, logLine } from "./agent.ts";

const EDGES_EXAMPLE = '[{ "role": "small", "statusUrl": "http://192.0.2.20/pop-status" }]';
/** Exit status for a configuration the process cannot run with. */
const EXIT_CONFIGURATION = 2;
/** How long a stop may take once the loop is told to end; past it the process exits anyway. */
const STOP_GRACE_MS = 2000;

const text = (fix: string) => z.string({ error: expected("a string", fix) }).min(1, { error: `is empty; ${fix}` });
/** A number in decimal from above 0 to `max`; `whole` for counts. The value is not secret, so a refusal quotes it. */
const positiveNumber = (fix: string, max: number, whole = false) =>
  z
    .string({ error: expected("a string", fix) })
    .regex(whole ? /^\d+$/ : /^\d+(\.\d+)?$/, { error: (issue) => `${JSON.stringify(issue.input)} is not a ${whole ? "whole " : ""}number; ${fix}` })
    .transform(Number)
    .refine((value) => value > 0, { error: `is 0; ${fix}` })
    .refine((value) => value <= max, { error: (issue) => `${String(issue.input)} is more than ${max}; ${fix}` });

const environment = z.object({
  POP: text("name the PoP this host belongs to"),
  HOST: text("name this host as the PoP's config does"),
  PARENT_INTERFACE: text('name the host interface the edges send through, e.g. "eth0"'),
  LINK_MBPS: positiveNumber("give the interface's capacity in Mbit/s, e.g. 1000", MAX_LINK_MBPS),
  /** JSON: [{ "role": "small", "statusUrl": "http://192.0.2.20/pop-status" }, …] */
  EDGES: z.string({ error: expected("a string", `give the host's edges as JSON, e.g. ${EDGES_EXAMPLE}`) }).transform((text, ctx) => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = z.array(z.object({ role: z.enum(ROLES), statusUrl: z.url() })).safeParse(json);
    if (!parsed.success) {
      ctx.addIssue({ code: "custom", message: `must be JSON [{ "role": <edge role>, "statusUrl": <url> }], e.g. ${EDGES_EXAMPLE}` });
      return z.NEVER;
    }
    return parsed.data;
  }),
  // Not quoted when refused: a URL can carry credentials.
  REPORT_ENDPOINT: z.url({
    protocol: /^https?$/,
    error: (issue) =>
      typeof issue.input === "string"
        ? "is not an http(s) URL; give the URL of the service's report route, e.g. https://switch-vaas.example.org/v1/pops/vienna/reports"
        : expected("a string", "give the URL of the service's report route")(issue),
  }),
  REPORT_KEY: z
    .string({ error: expected("a string", "give this host's report key, as the PoP stack's reportKeys holds it") })
    .min(16, { error: "must be at least 16 characters; give this host's report key, as the PoP stack's reportKeys holds it" }),
  // At least the agent's MIN_PERIOD_SECONDS (1): the regex admits no fraction, the refinement no 0.
  PERIOD_SECONDS: positiveNumber(`give the seconds between reports, e.g. ${DEFAULT_PERIOD_SECONDS}`, MAX_PERIOD_SECONDS, true).optional(),
  // Unset: the agent's defaults, this machine's own /proc.
  STAT_FILE: text("give the path of the host's /proc/stat").optional(),
  NET_DEV_FILE: text("give the path of the host's /proc/net/dev").optional(),
});

/** The variable that names each source of a reading, for the line that says it is missing. */
const SOURCE_VARIABLES: Record<Source, keyof z.input<typeof environment>> = { statFile: "STAT_FILE", netDevFile: "NET_DEV_FILE", parentInterface: "PARENT_INTERFACE" };

let parsed: z.output<typeof environment>;
try {
  parsed = parseOrThrow(environment, process.env, "");
} catch (error) {
  if (!(error instanceof InvalidArgumentsError)) {
    throw error;
  }
  // One line per variable, naming it; values (the key among them) never reach the log.
  for (const problem of error.problems) {
    logLine(problem);
  }
  process.exit(EXIT_CONFIGURATION);
}
const env = parsed;
const manager = new InstanceManager({
  pop: env.POP,
  host: env.HOST,
  parentInterface: env.PARENT_INTERFACE,
  linkMbps: env.LINK_MBPS,
  edges: env.EDGES,
  endpoint: env.REPORT_ENDPOINT,
  key: env.REPORT_KEY,
  statFile: env.STAT_FILE,
  netDevFile: env.NET_DEV_FILE,
  periodSeconds: env.PERIOD_SECONDS,
  log: logLine,
});

const stop = new AbortController();
const onSignal = () => {
  if (stop.signal.aborted) {
    return;
  }
  // The loop ends at once, abandoning a retry's sleep or a send in flight. Lost with the process:
  // the reports still waiting and the interval since the last reading; the service sees the gap
  // in this host's periods. A backstop in case something does not heed the signal:
  setTimeout(() => {
    logLine(`did not stop within ${STOP_GRACE_MS} ms of the signal; exiting anyway`);
    process.exit(1);
  }, STOP_GRACE_MS).unref();
  stop.abort();
};
process.on("SIGTERM", onSignal);
process.on("SIGINT", onSignal);

try {
  await manager.run(stop.signal);
} catch (error) {
  if (error instanceof SourceError) {
    // The first reading failed: a missing mount or a wrong name, which waiting will not mend.
    logLine(`${SOURCE_VARIABLES[error.source]} ${error.problem}`);
    process.exit(EXIT_CONFIGURATION);
  }
  logLine(`stopped by an unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
}
process.exit(0);
