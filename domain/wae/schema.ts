import { z } from "zod";
import { expected } from "../validation.ts";
import { ROLES } from "./model.ts";

/** Schemas the WAE's inputs share (reports, layout requests, the PoP spec), with fix-it messages. */

export const edgeRole = z.enum(ROLES, { error: (issue) => `${JSON.stringify(issue.input)} is not an edge role; use ${ROLES.map((r) => `"${r}"`).join(", ")}` });

const requestCount = z
  .number({ error: expected("a number", "give the number of requests (0 if none)") })
  .int({ error: (issue) => `${String(issue.input)} is not a whole number of requests` })
  .min(0, { error: (issue) => `${String(issue.input)} is negative; give the number of requests, 0 or more` });

/** Requests per role. */
export const requestCounts = z.strictObject(
  { small: requestCount, large: requestCount, vod: requestCount, live: requestCount },
  { error: expected("a map", "give the requests per role, { small, large, vod, live }") },
);

/**
 * 800 Gbit/s, the fastest Ethernet IEEE has standardised (802.3df, 2024): a link said to be faster
 * is a unit mix-up (kbit/s for Mbit/s).
 */
export const MAX_LINK_MBPS = 800_000;

/** A measured amount, 0 or more. */
export const nonNegative = (what: string) =>
  z.number({ error: expected("a number", `give the ${what}`) }).min(0, { error: (issue) => `${String(issue.input)} is negative; give the ${what}, 0 or more` });
