import { z } from "zod";
import { CONFERENCE_STATES } from "./conference-lifecycle.ts";

/**
 * The shapes of what the service records and shows, written once: the store's records
 * (automation/store/records.ts) and the API's response schemas (and so /openapi.json) both derive
 * from them, and neither imports the other.
 */

export const EVENT_TYPES = ["placed", "queued", "deploying", "ready", "failed", "stopping", "stopped"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const resources = z.object({ cpu: z.string(), memory: z.string() });

/** What the decision maker chose and why. */
export const decisionRecord = z.object({
  cluster: z.string(),
  resources,
  predicted: z.object({
    objective: z.string(),
    objectiveMs: z.number(),
    meanRttMs: z.number(),
    worstPairRttMs: z.number(),
    percentileRttMs: z.number().optional(),
  }),
  /** Every cluster, feasible ones first, best first. */
  ranking: z.array(
    z.object({ cluster: z.string(), feasible: z.boolean(), objectiveMs: z.number(), meanRttMs: z.number(), worstPairRttMs: z.number(), reason: z.string().optional() }),
  ),
  /** Participants the decision could not place, by their index in the request, with why. */
  unplaced: z.array(z.object({ index: z.number().int(), reason: z.string() })),
});
export type Decision = z.output<typeof decisionRecord>;

export const conferenceRecord = z.object({
  id: z.string(),
  owner: z.string(),
  state: z.enum(CONFERENCE_STATES),
  cluster: z.string(),
  decision: decisionRecord,
  url: z.string().optional(),
  /** Why a create failed. */
  error: z.string().optional(),
  /** Resource steps done of those planned, of the operation running now or last. */
  progress: z.object({ done: z.number().int(), total: z.number().int() }),
  createdAt: z.string(),
  updatedAt: z.string(),
});

/** What an operation did to one resource of its stack, as the engine reported it. */
export const resourceChange = z.object({
  resource: z.string(),
  resourceType: z.string(),
  action: z.enum(["create", "update", "replace", "delete", "same"]),
});
export type ResourceChange = z.output<typeof resourceChange>;

/** What became of a PoP loop's decision (automation/store/records.ts popDecisionRecord says each). */
export const POP_DECISION_OUTCOMES = ["unchanged", "held", "applying", "applied", "failed", "superseded"] as const;
export type PopDecisionOutcome = (typeof POP_DECISION_OUTCOMES)[number];
