import { availableParallelism } from "node:os";
import { z } from "zod";
import { expected, parseOrThrow } from "../../domain/validation.ts";

/** The service's configuration, from its environment, validated at boot (README "The automation service"). */

export const ENGINES = ["auto", "local", "offline"] as const;

/**
 * How long a client may take to send a request's head and body. Node's HTTP server waits forever
 * unless told (https://nodejs.org/api/http.html#serverrequesttimeout); 30 s is ample for the
 * largest body the API takes (1 MiB) over a slow link, and short enough that stalled connections
 * cannot pile up. Event streams are not requests still arriving: they run past it.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Event streams one subject may hold open: a dashboard per conference and a few tabs, not a fan-out. */
export const DEFAULT_STREAMS_PER_SUBJECT = 20;
/** Event streams the service holds open in all: each is a socket, a store listener and a heartbeat timer. */
export const DEFAULT_STREAMS_TOTAL = 1000;

/** A count of event streams, between 1 and 100000. */
const streamCap = (example: number) =>
  z.coerce
    .number({ error: expected("a number") })
    .int({ error: `is not a whole number; give the most event streams to hold open, e.g. ${example}` })
    .min(1, { error: `is below 1; give the most event streams to hold open, e.g. ${example}` })
    .max(100_000, { error: `is above 100000; give the most event streams to hold open, e.g. ${example}` });

const environment = z.object({
  /** auto: local when a Pulumi CLI is found, else offline (nothing is deployed). */
  SWITCH_ENGINE: z.enum(ENGINES, { error: `is not an engine; use ${ENGINES.join(", ")}` }).default("auto"),
  SWITCH_DATA_DIR: z.string({ error: expected("a path") }).min(1, { error: "is empty; give a directory, or unset it for ./.switch" }).default("./.switch"),
  /** Comma-separated subject:role:sha256hex; unset means the embedded default's token file. */
  SWITCH_API_TOKENS: z.string().optional(),
  /** A testbed stack's name (default testbed) or a clusters file (a path containing / or ending .json/.yaml). */
  SWITCH_TESTBED: z.string().min(1, { error: "is empty; give a testbed stack's name or a clusters file, or unset it" }).optional(),
  SWITCH_BACKEND_URL: z
    .string()
    .regex(/^[a-z0-9+]+:\/\//, { error: 'is not a backend URL; give e.g. "file:///var/lib/switch/state" or "gs://bucket"' })
    .optional(),
  SWITCH_CONCURRENCY: z.coerce
    .number({ error: expected("a number") })
    .int({ error: "is not a whole number; give the operations to run at once, e.g. 4" })
    .min(1, { error: "is below 1; give the operations to run at once, e.g. 4" })
    .max(256, { error: "is above 256; give the operations to run at once, e.g. 4" })
    .default(Math.max(2, availableParallelism())),
  HOST: z.string().min(1, { error: "is empty; give an address to listen on, e.g. 127.0.0.1" }).default("127.0.0.1"),
  PORT: z.coerce
    .number({ error: expected("a number") })
    .int({ error: "is not a port number" })
    .min(0, { error: "is not a port number; use 0-65535" })
    .max(65535, { error: "is not a port number; use 0-65535" })
    .default(8080),
  /** Milliseconds a client may take to send a whole request, head and body; past it the service answers 408 and closes the connection. */
  SWITCH_REQUEST_TIMEOUT_MS: z.coerce
    .number({ error: expected("a number") })
    .int({ error: "is not a whole number of milliseconds; give e.g. 30000" })
    .min(100, { error: "is below 100 ms, too short for a request to arrive; give e.g. 30000" })
    .max(600_000, { error: "is above 600000 (10 minutes); give e.g. 30000" })
    .default(DEFAULT_REQUEST_TIMEOUT_MS),
  /** Event streams one token's subject may hold open; past it a stream is refused with 429. */
  SWITCH_STREAMS_PER_SUBJECT: streamCap(DEFAULT_STREAMS_PER_SUBJECT).default(DEFAULT_STREAMS_PER_SUBJECT),
  /** Event streams the service holds open in all; past it a stream is refused with 503. */
  SWITCH_STREAMS_TOTAL: streamCap(DEFAULT_STREAMS_TOTAL).default(DEFAULT_STREAMS_TOTAL),
  /** Days an ended conference's records (its operations and events) are kept before they are deleted. */
  SWITCH_RETENTION_DAYS: z.coerce
    .number({ error: expected("a number") })
    .int({ error: "is not a whole number of days" })
    .min(1, { error: "is below 1; give the days ended conferences are kept, e.g. 30" })
    .max(3650, { error: "is above 3650; give the days ended conferences are kept, e.g. 30" })
    .default(30),
  /** The PoP loop's period (the paper's ten minutes); SWITCH_POPS, SWITCH_POP_KEYS_FILE and SWITCH_POP_MODELS name the PoPs and how each is laid out (loops/pop-config.ts). */
  SWITCH_POP_PERIOD_SECONDS: z.coerce
    .number({ error: expected("a number") })
    .int({ error: "is not a whole number of seconds" })
    .min(60, { error: "is below 60; give the PoP loop's period in seconds, e.g. 600" })
    .max(86_400, { error: "is above 86400; give the PoP loop's period in seconds, e.g. 600" })
    .default(600),
  SWITCH_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], { error: "is not a log level; use info, debug, warn…" }).default("info"),
});

export type ServiceEnvironment = z.output<typeof environment>;

/** The bounds the HTTP app enforces (STYLE.md 21), as the environment gives them. */
export type ServiceLimits = Pick<ServiceEnvironment, "SWITCH_REQUEST_TIMEOUT_MS" | "SWITCH_STREAMS_PER_SUBJECT" | "SWITCH_STREAMS_TOTAL">;

/** Reads the service's variables; a bad one fails the boot with its name and the fix. */
export function readEnvironment(env: NodeJS.ProcessEnv): ServiceEnvironment {
  const relevant = Object.fromEntries(Object.keys(environment.shape).flatMap((key) => (env[key] === undefined ? [] : [[key, env[key]]])));
  return parseOrThrow(environment, relevant, "");
}
