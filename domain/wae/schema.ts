import { z } from "zod";
import { ROLES } from "./model.ts";

/** Schemas the WAE's inputs share (reports, layout requests, the PoP spec), with fix-it messages. */

export const edgeRole = z.enum(ROLES, { error: (issue) => `${JSON.stringify(issue.input)} is not an edge role; use ${ROLES.map((r) => `"${r}"`).join(", ")}` });

const requestCount = z
  .number({ error: "is required; give the number of requests (0 if none)" })
  .int({ error: (issue) => `${String(issue.input)} is not a whole number of requests` })
  .min(0, { error: (issue) => `${String(issue.input)} is negative; give the number of requests, 0 or more` });

/** Requests per role. */
export const requestCounts = z.strictObject({ small: requestCount, large: requestCount, vod: requestCount, live: requestCount });

/** A measured amount, 0 or more. */
export const nonNegative = (what: string) =>
  z.number({ error: `is required; give the ${what}` }).min(0, { error: (issue) => `${String(issue.input)} is negative; give the ${what}, 0 or more` });
