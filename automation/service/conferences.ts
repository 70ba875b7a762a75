import type { z } from "zod";
import { createHash, randomBytes } from "node:crypto";
import { type ConferenceState, type LifecycleEvent, type LifecycleFacts, nextState } from "../../domain/conference-lifecycle.ts";
import { CONFERENCE_STACK_PREFIX, conferenceName } from "../../domain/contracts/conference.ts";
import { candidateClusters } from "../../domain/decision/candidates.ts";
import { conferenceSpecFor, conferenceStackConfig } from "../../domain/decision/conference-config.ts";
import { type Placement, placeConference } from "../../domain/decision/placement.ts";
import type { Objective, Participant, PlacementRequest } from "../../domain/decision/schema.ts";
import { ConflictError, InvalidArgumentsError, NotFoundError } from "../../domain/errors.ts";
import type { StackConfigMap } from "../engine/engine.ts";
import type { IpLocator } from "../geolocation/ip-locator.ts";
import type { OperationRunner, StackOwner } from "../operations/runner.ts";
import type { OperationRecord } from "../store/records.ts";
import type { Decision } from "../../domain/records.ts";
import type { ConferenceRecord, ListCursor, Store } from "../store/store.ts";
import type { ClusterRegistry } from "./registry.ts";
import type { conferenceRequest } from "./schemas.ts";

/**
 * The conference lifecycle (ARCHITECTURE.md, the paper's Fig. 1 made durable): decide and record
 * a conference, and have the runner (../operations/runner.ts) run its stack's operations — `up` to
 * ready, or a failed create cleaned up; `destroy` to stopped. This module is the conference's
 * owner of its stack: it says what each step of an operation does to the conference, by the
 * lifecycle table (domain/conference-lifecycle.ts), inside the transaction that records the step.
 */

export type ConferenceRequest = z.output<typeof conferenceRequest>;
type ObjectiveName = NonNullable<ConferenceRequest["objective"]>;

/** Defaults of a request, as in `npm run place`: every stream (last-N -1), simulcast on, the mean RTT. */
const DEFAULT_LAST_N = -1;
const DEFAULT_SIMULCAST = true;
const DEFAULT_OBJECTIVE: ObjectiveName = "mean";

const OBJECTIVES: Readonly<Record<ObjectiveName, Objective>> = { mean: "mean", worstPair: "worstPair", p95: { percentile: 95 } };

/** A request with every default applied: what it asks for, however much of it was spelled out. */
// Exported so that the service tests read a request with the defaults the service applies (test/service/fuzz.test.ts, schemathesis.test.ts).
export function withDefaults(request: ConferenceRequest): Required<ConferenceRequest> {
  return {
    participants: request.participants,
    expectedParticipants: request.expectedParticipants ?? request.participants.length,
    lastN: request.lastN ?? DEFAULT_LAST_N,
    simulcast: request.simulcast ?? DEFAULT_SIMULCAST,
    objective: request.objective ?? DEFAULT_OBJECTIVE,
  };
}

/**
 * `value` as JSON with every object's keys sorted: two requests that mean the same are the same
 * text, whichever order their keys came in (an Idempotency-Key's retry is compared by its digest).
 */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, nested: unknown) =>
    // Code-unit order, which no locale changes (an object's keys are distinct, never equal).
    typeof nested === "object" && nested !== null && !Array.isArray(nested) ? Object.fromEntries(Object.entries(nested).sort(([a], [b]) => (a < b ? -1 : 1))) : nested,
  );
}

function digest(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export interface ConferenceManagerOptions {
  store: Store;
  registry: Pick<ClusterRegistry, "clusters">;
  /** The testbed stack a conference's StackReference names. */
  testbedStack: string;
  /** Locates participants given by address; without one, addresses are refused. */
  locator?: IpLocator;
}

/** The id a what-if placement is checked under; never recorded. */
const WHAT_IF_ID = "what-if";

/** Conference ids: 12 characters of [a-z0-9], a DNS label with the `conf-` prefix. */
function newConferenceId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...randomBytes(12)].map((byte) => alphabet[byte % alphabet.length]).join("");
}

export class ConferenceManager implements StackOwner {
  private readonly store: Store;
  private readonly registry: Pick<ClusterRegistry, "clusters">;
  private readonly options: ConferenceManagerOptions;
  /** Set once the runner exists: the runner needs its owners, and the manager the runner. */
  private runner: OperationRunner | undefined;

  constructor(options: ConferenceManagerOptions) {
    this.options = options;
    this.store = options.store;
    this.registry = options.registry;
  }

  /** The runner that runs the conferences' stack operations. */
  runWith(runner: OperationRunner): void {
    this.runner = runner;
  }

  private get operations(): OperationRunner {
    if (this.runner === undefined) {
      throw new Error("the conference manager was given no runner (runWith)");
    }
    return this.runner;
  }

  /** What placement would decide for `request` now, changing nothing. */
  place(request: ConferenceRequest): Decision {
    const { placementRequest, unplaced } = this.placementRequest(request);
    const placement = placeConference(placementRequest, candidateClusters(this.registry.clusters(), this.store.running()));
    // Refuses, as a create would, when no cluster has room.
    conferenceSpecFor(WHAT_IF_ID, placementRequest, placement);
    return decisionOf(placement, unplaced);
  }

  /**
   * Decides and records a conference with its queued `up`, and has the runner start it. With an
   * idempotency key, a retry of the same request returns the first conference; the same key with
   * another request is a ConflictError.
   */
  create(owner: string, request: ConferenceRequest, idempotencyKey?: string): ConferenceRecord {
    if (this.operations.isClosing) {
      throw new ConflictError("the service is shutting down; retry against its next instance");
    }
    const { placementRequest, unplaced } = this.placementRequest(request);
    const { result, operation } = this.store.atomically(() => {
      const created = this.store.createConference({
        owner,
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        requestHash: digest(canonicalJson(withDefaults(request))),
        // Keys recorded before issue 16 hold the digest of the request as sent; a retry sent as it was still matches.
        legacyRequestHash: digest(JSON.stringify(request)),
        decide: (running) => {
          const placement = placeConference(placementRequest, candidateClusters(this.registry.clusters(), running));
          const id = newConferenceId();
          return { id, spec: conferenceSpecFor(id, placementRequest, placement), decision: decisionOf(placement, unplaced) };
        },
      });
      return { result: created, operation: created.outcome === "created" ? this.queue(created.conference.id, "up") : undefined };
    });
    if (result.outcome === "key-reused") {
      throw new ConflictError(`the Idempotency-Key was used for another request (conference ${result.conference.id}); use a new key for a new conference`);
    }
    if (operation !== undefined) {
      this.operations.submit(operation);
    }
    return result.conference;
  }

  /** A conference `viewer` may see; others' are not found, so that their ids reveal nothing. */
  get(id: string, viewer: { subject: string; admin: boolean }): ConferenceRecord {
    const conference = this.store.conference(id);
    if (conference === undefined || (!viewer.admin && conference.owner !== viewer.subject)) {
      throw new NotFoundError(`conference ${id} does not exist`);
    }
    return conference;
  }

  /** A page of the conferences `viewer` may see, newest first, and the cursor of the next page. */
  list(viewer: { subject: string; admin: boolean }, filter: { state?: ConferenceState; limit: number; after?: ListCursor }): { conferences: ConferenceRecord[]; next?: ListCursor } {
    return this.store.conferences({ ...(viewer.admin ? {} : { owner: viewer.subject }), ...filter });
  }

  /**
   * Stops a conference: idempotent. `stopping`, its deployment cancelled whether it runs here or a
   * dead process or an unrecorded outcome left it, and a destroy queued (unless a failed create's
   * cleanup is queued already: it becomes the stop's). Nothing when it is stopping or over already
   * (a second stop is the first one). A conference whose stack outlived a failed destroy is not
   * over: stopping it again runs the destroy again.
   */
  stop(id: string, viewer: { subject: string; admin: boolean }): ConferenceRecord {
    this.get(id, viewer);
    const stack = conferenceName(id);
    const destroy = this.store.atomically(() => {
      if (this.transition(id, "stopRequested", {}, { stackLeft: this.store.stackLeft(id) }) === undefined) {
        return undefined;
      }
      this.store.cancelOperations(stack, "up", "cancelled by a stop");
      return this.store.unfinishedOperation(stack, "destroy") === undefined ? this.queue(id, "destroy") : undefined;
    });
    const conference = this.store.conference(id)!;
    if (conference.state === "stopping") {
      this.operations.abortUp(stack, "stopped by its organizer");
    }
    if (destroy !== undefined) {
      this.operations.submit(destroy);
    }
    return conference;
  }

  // The conference as its stack's owner (StackOwner): each runs inside the store transaction that records the step.

  owns(stack: string): boolean {
    return stack.startsWith(CONFERENCE_STACK_PREFIX);
  }

  config(operation: OperationRecord): StackConfigMap {
    return conferenceStackConfig(this.conferenceOf(operation).spec, this.options.testbedStack);
  }

  attemptStarted(operation: OperationRecord): true | { refused: string } {
    if (operation.kind === "up" && this.transition(this.conferenceOf(operation).id, "upStarted") === undefined) {
      return { refused: "the conference was stopped before its deployment began" };
    }
    return true;
  }

  progress(operation: OperationRecord, done: number, total: number): void {
    const conference = this.conferenceOf(operation);
    this.store.setConferenceProgress(conference.id, done, total);
    if (operation.kind === "up" && conference.state === "deploying") {
      this.store.appendEvent(operation.stack, "deploying", { done, total });
    }
  }

  /** `ready`, unless a stop came meanwhile (it stays `stopping`, its destroy queued). */
  upSucceeded(operation: OperationRecord, outputs: Record<string, unknown>): void {
    this.transition(this.conferenceOf(operation).id, "upSucceeded", { url: String(outputs.url) });
  }

  /** A failed create leaves nothing behind: its stack is destroyed before the failure is told. */
  upFailed(): boolean {
    return true;
  }

  /**
   * After a stop the conference is `stopped` (or `failed`, naming why the destroy did not
   * succeed); after a failed create it is `failed` with the create's reason.
   */
  destroyEnded(operation: OperationRecord, error: string | undefined): void {
    const conference = this.conferenceOf(operation);
    const event = error === undefined ? "destroySucceeded" : "destroyFailed";
    if (conference.state === "stopping") {
      this.transition(conference.id, event, error === undefined ? {} : { reason: `stopping failed: ${error}` });
      return;
    }
    const create = this.store.operations(operation.stack).findLast((candidate) => candidate.kind === "up" && candidate.state === "failed");
    const reason = create?.error ?? "the deployment was interrupted";
    this.transition(conference.id, event, { reason: error === undefined ? reason : `${reason}; cleaning up failed too: ${error}` });
  }

  /**
   * Applies `event` to the conference as the lifecycle's table says: its next state, if any, is
   * recorded with the stream's event of the same name. Returns the state it moved to.
   */
  private transition(id: string, event: LifecycleEvent, data: { url?: string; reason?: string } = {}, facts: LifecycleFacts = {}): ConferenceState | undefined {
    const next = nextState(this.store.conference(id)!.state, event, facts);
    if (next !== undefined) {
      this.store.setConferenceState(id, next, data);
    }
    return next;
  }

  /** Queues an operation on the conference's stack, with the stream's event saying so. */
  private queue(id: string, kind: OperationRecord["kind"]): OperationRecord {
    const operation = this.store.queueOperation(conferenceName(id), kind);
    this.store.appendEvent(operation.stack, "queued", { operation: operation.id, kind });
    return operation;
  }

  private conferenceOf(operation: OperationRecord): ConferenceRecord {
    const conference = this.store.conference(operation.stack.slice(CONFERENCE_STACK_PREFIX.length));
    if (conference === undefined) {
      throw new Error(`the stack ${operation.stack} has operations but no conference record`);
    }
    return conference;
  }

  private placementRequest(request: ConferenceRequest): { placementRequest: PlacementRequest; unplaced: Decision["unplaced"] } {
    const participants: Participant[] = [];
    const unplaced: Decision["unplaced"] = [];
    request.participants.forEach((given, index) => {
      if ("lat" in given) {
        participants.push({ lat: given.lat, lon: given.lon });
        return;
      }
      const located = this.options.locator?.locate(given.ip);
      if (located?.status === "located" && located.location !== undefined) {
        participants.push({ lat: located.location.lat, lon: located.location.lon, ...(located.location.country === undefined ? {} : { country: located.location.country }) });
      } else {
        unplaced.push({ index, reason: located?.reason ?? `cannot be located by address (${located?.status ?? "no address database"})` });
      }
    });
    if (participants.length === 0) {
      throw new InvalidArgumentsError(
        unplaced.map((entry) => `participants.${entry.index}.ip ${entry.reason}; give { lat, lon } for at least one participant`),
      );
    }
    const { expectedParticipants, lastN, simulcast, objective } = withDefaults(request);
    return { placementRequest: { participants, expectedParticipants, lastN, simulcast, objective: OBJECTIVES[objective] }, unplaced };
  }

}

function decisionOf(placement: Placement, unplaced: Decision["unplaced"]): Decision {
  const best = placement.ranking[0]!;
  return {
    // Only decisions with a cluster are made (conferenceSpecFor refuses the others).
    cluster: placement.cluster!,
    resources: { cpu: placement.size.cpu, memory: placement.size.memory },
    predicted: {
      objective: placement.objective,
      objectiveMs: best.objectiveMs,
      meanRttMs: best.meanRttMs,
      worstPairRttMs: best.worstPairRttMs,
      ...(best.percentileRttMs === undefined ? {} : { percentileRttMs: best.percentileRttMs }),
    },
    ranking: placement.ranking.map((entry) => ({
      cluster: entry.cluster,
      feasible: entry.feasible,
      objectiveMs: entry.objectiveMs,
      meanRttMs: entry.meanRttMs,
      worstPairRttMs: entry.worstPairRttMs,
      ...(entry.reason === undefined ? {} : { reason: entry.reason }),
    })),
    unplaced,
  };
}
