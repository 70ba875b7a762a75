/**
 * The instance manager's process, as its container runs it: configuration from the environment
 * (validated), one report per period, a clean stop on SIGTERM.
 */
import { z } from "zod";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { expected, parseOrThrow } from "../../domain/validation.ts";
import { ROLES } from "../../domain/wae/model.ts";
import { InstanceManager } from "./agent.ts";

/** Ten minutes between reports when PERIOD_SECONDS is not set. */
const DEFAULT_PERIOD_SECONDS = 600;
const EDGES_EXAMPLE = '[{ "role": "small", "statusUrl": "http://192.0.2.20/pop-status" }]';

const text = (fix: string) => z.string({ error: expected("a string", fix) }).min(1, { error: `is empty; ${fix}` });
/** A positive number in decimal; `whole` for counts. The value is not secret, so a refusal quotes it. */
const positiveNumber = (fix: string, whole = false) =>
  z
    .string({ error: expected("a string", fix) })
    .regex(whole ? /^\d+$/ : /^\d+(\.\d+)?$/, { error: (issue) => `${JSON.stringify(issue.input)} is not a ${whole ? "whole " : ""}number; ${fix}` })
    .transform(Number)
    .refine((value) => value > 0, { error: `is 0; ${fix}` });

const environment = z.object({
  POP: text("name the PoP this host belongs to"),
  HOST: text("name this host as the PoP's config does"),
  PARENT_INTERFACE: text('name the host interface the edges send through, e.g. "eth0"'),
  LINK_MBPS: positiveNumber("give the interface's capacity in Mbit/s, e.g. 1000"),
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
  PERIOD_SECONDS: positiveNumber(`give the seconds between reports, e.g. ${DEFAULT_PERIOD_SECONDS}`, true).optional(),
  // Unset: the agent's defaults, this machine's own /proc.
  STAT_FILE: text("give the path of the host's /proc/stat").optional(),
  NET_DEV_FILE: text("give the path of the host's /proc/net/dev").optional(),
});

let parsed: z.output<typeof environment>;
try {
  parsed = parseOrThrow(environment, process.env, "");
} catch (error) {
  if (!(error instanceof InvalidArgumentsError)) {
    throw error;
  }
  // One line per variable, naming it; values (the key among them) never reach the log.
  console.error(error.problems.map((problem) => `instance manager: ${problem}`).join("\n"));
  process.exit(2);
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
});

let stopping = false;
let running: Promise<void> = Promise.resolve();
const period = () => {
  running = manager.tick().catch((error: unknown) => console.error(`instance manager: ${error instanceof Error ? error.message : String(error)}`));
};
period();
const timer = setInterval(period, (env.PERIOD_SECONDS ?? DEFAULT_PERIOD_SECONDS) * 1000);
process.on("SIGTERM", () => {
  if (stopping) {
    return;
  }
  stopping = true;
  clearInterval(timer);
  // Finish the period in flight; reports still waiting are lost with the process, as the
  // service would see from the gap in periods.
  void running.then(() => process.exit(0));
});
