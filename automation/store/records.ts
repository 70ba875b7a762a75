import { z } from "zod";
import { EVENT_TYPES, POP_DECISION_OUTCOMES, resourceChange } from "../../domain/records.ts";
import { OPERATION_KINDS } from "../engine/engine.ts";

/**
 * The shapes of the store's own records (operations, events, PoP decisions); what the API shows of
 * them too is in domain/records.ts, which the API's schemas import without the store.
 */

export const OPERATION_STATES = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
export type OperationState = (typeof OPERATION_STATES)[number];

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
