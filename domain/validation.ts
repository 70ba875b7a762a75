import { z } from "zod";
import { InvalidArgumentsError } from "./errors.ts";

/**
 * Parses `value` with `schema`; on failure throws an {@link InvalidArgumentsError} whose lines
 * start with the full key of the offending field, e.g. `switch-vaas:sites[2].region`.
 *
 * Schemas carry their own fix-it messages; this only prefixes the key, so the same schema serves
 * a stack (prefix `switch-vaas:sites`) and a component (prefix `sites`).
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, keyPrefix: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) {
    return result.data;
  }
  // One line per problem: checks of one value may raise the same issue more than once.
  throw new InvalidArgumentsError([...new Set(result.error.issues.flatMap((issue) => describeIssue(keyPrefix, issue)))]);
}

/**
 * The message of a schema's type check, e.g. `z.number({ error: expected("a number", "give the
 * number of nodes, e.g. 2") })`: "is required; <fix>" when the value is missing and "must be
 * <type>; <fix>" when it is there with another type. zod fires a type check's error for both, and
 * its own text ("Invalid input: expected string, received number") names neither the fix nor,
 * for a wrong type, the truth. Without `fix`, the type is the fix ("give <type>").
 */
export function expected(type: string, fix?: string): (issue: { readonly input?: unknown }) => string {
  return (issue) => (issue.input === undefined ? `is required; ${fix ?? `give ${type}`}` : `must be ${type}${fix === undefined ? "" : `; ${fix}`}`);
}

function describeIssue(keyPrefix: string, issue: z.core.$ZodIssue): string[] {
  // A component names its fields bare ("id"), a stack under its config key ("switch-vaas:conference.id").
  const key = (keyPrefix + formatPath(issue.path)).replace(/^\./, "");
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((unknown) => `${key} has an unknown key "${unknown}"; remove it or correct its spelling`);
  }
  return [`${key} ${issue.message}`];
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === "number" ? `[${part}]` : `.${String(part)}`)).join("");
}

const degrees = (axis: string, limit: number) =>
  z
    .number({ error: expected("a number", `give the ${axis} in decimal degrees`) })
    .refine((value) => Math.abs(value) <= limit, {
      error: (issue) => `${String(issue.input)} is out of range; use decimal degrees between -${limit} and ${limit}`,
    });

/** Latitude in decimal degrees north, with fix-it messages. */
export const latitude = degrees("latitude (degrees north)", 90);
/** Longitude in decimal degrees east, with fix-it messages. */
export const longitude = degrees("longitude (degrees east)", 180);

const LABEL = "[a-z0-9](?:[-a-z0-9]*[a-z0-9])?";
/** One DNS label (RFC 1123): lowercase letters, digits and '-', starting and ending with a letter or digit. */
export const DNS_LABEL = new RegExp(`^${LABEL}$`);
/** A domain of two labels or more, e.g. "conf.example.org". */
export const DNS_DOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})+$`);
/** A host name of one label or more, at most 253 characters. Dotted-decimal IPv4 addresses are such names too. */
export const HOST_NAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/** A Kubernetes quantity that `parse` (quantity.ts) reads, with fix-it messages naming `example`. */
export const kubernetesQuantity = (parse: (text: string) => number | undefined, example: string) =>
  z.string({ error: expected("a string", `give a Kubernetes quantity, e.g. ${example}`) }).refine((text) => parse(text) !== undefined, {
    error: (issue) => `${JSON.stringify(issue.input)} is not a Kubernetes quantity; use e.g. ${example}`,
    // Later checks (a minimum) need a quantity to compare.
    abort: true,
  });
