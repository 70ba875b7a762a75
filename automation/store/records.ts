import { z } from "zod";
import { CONFERENCE_STATES } from "../../domain/conference-lifecycle.ts";
import { OPERATION_KINDS } from "../engine/engine.ts";

/**
 * The shapes of the store's records, written once: the store's types and the API's response
 * schemas (and so /openapi.json) both derive from them.
 */

export const OPERATION_STATES = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
export type OperationState = (typeof OPERATION_STATES)[number];

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

/** One operation on a stack (a conference's, a PoP's): what the runner ran, and how it ended. */
export const operationRecord = z.object({
  id: z.number().int(),
  stack: z.string(),
  kind: z.enum(OPERATION_KINDS),
  state: z.enum(OPERATION_STATES),
  attempts: z.number().int(),
  createdAt: z.string(),
  startedAt: z.string().optional(),
  endedAt: z.string().optional(),
  error: z.string().optional(),
  outputs: z.record(z.string(), z.unknown()).optional(),
  changes: z.array(resourceChange).optional(),
});
export type OperationRecord = z.output<typeof operationRecord>;

/** An event of a stack, in the order of its id; a conference's stream sends its stack's. */
export const eventRecord = z.object({
  id: z.number().int(),
  stack: z.string(),
  type: z.enum(EVENT_TYPES),
  data: z.record(z.string(), z.unknown()),
  at: z.string(),
});
export type EventRecord = z.output<typeof eventRecord>;

export const POP_DECISION_OUTCOMES = ["unchanged", "held", "applying", "applied", "failed", "superseded"] as const;
export type PopDecisionOutcome = (typeof POP_DECISION_OUTCOMES)[number];

/**
 * One decision of a PoP's loop: what it saw (`inputs`), what it chose (`layout`, with its
 * addresses) and how (`strategy`), and what became of it — `unchanged` (the running layout stands),
 * `held` (a change not yet persistent enough to act on), `applying` (its `up` is queued or runs),
 * `applied`, `failed` (the last good layout stays), `superseded` (a newer decision came before its
 * `up` began; that `up` applies the newer) — with the `up` that applied it.
 */
export const popDecisionRecord = z.object({
  id: z.number().int(),
  pop: z.string(),
  decidedAt: z.string(),
  periodStart: z.string(),
  strategy: z.string(),
  outcome: z.enum(POP_DECISION_OUTCOMES),
  inputs: z.record(z.string(), z.unknown()),
  layout: z.record(z.string(), z.unknown()),
  /** Milliseconds each step of the decision took. */
  timings: z.record(z.string(), z.number()),
  reason: z.string().optional(),
  operationId: z.number().int().optional(),
});
export type PopDecision = z.output<typeof popDecisionRecord>;
