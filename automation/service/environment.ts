import { availableParallelism } from "node:os";
import { z } from "zod";
import { expected, parseOrThrow } from "../../domain/validation.ts";

/** The service's configuration, from its environment, validated at boot (README "The automation service"). */

export const ENGINES = ["auto", "local", "offline"] as const;

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
  SWITCH_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], { error: "is not a log level; use info, debug, warn…" }).default("info"),
});

export type ServiceEnvironment = z.output<typeof environment>;

/** Reads the service's variables; a bad one fails the boot with its name and the fix. */
export function readEnvironment(env: NodeJS.ProcessEnv): ServiceEnvironment {
  const relevant = Object.fromEntries(Object.keys(environment.shape).flatMap((key) => (env[key] === undefined ? [] : [[key, env[key]]])));
  return parseOrThrow(environment, relevant, "");
}
