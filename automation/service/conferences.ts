import pRetry from "p-retry";
import { createHash, randomBytes } from "node:crypto";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { candidateClusters } from "../../domain/decision/candidates.ts";
import { conferenceSpecFor, conferenceStackConfig } from "../../domain/decision/conference-config.ts";
import { type Placement, placeConference } from "../../domain/decision/placement.ts";
import type { Objective, Participant, PlacementRequest } from "../../domain/decision/schema.ts";
import { ConflictError, InvalidArgumentsError, NotFoundError } from "../../domain/errors.ts";
import { type Engine, type EngineEvent, isEngineError } from "../engine/engine.ts";
import type { OperationQueue } from "../engine/queue.ts";
import type { IpLocator } from "../geolocation/ip-locator.ts";
import type { ConferenceState, Decision, OperationRecord } from "../store/records.ts";
import type { ConferenceRecord, Store } from "../store/store.ts";
import type { Registry } from "./registry.ts";

/**
 * The conference lifecycle (ARCHITECTURE.md, the paper's Fig. 1 made durable): decide, record,
 * then run the stack's operations in the background through the queue — `up` to ready, or a failed
 * create cleaned up; `destroy` to stopped — and, at start, finish what a dead process left.
 */

/** A participant as a request gives it: an address to locate, or a position. */
export type GivenParticipant = { ip: string } | { lat: number; lon: number };

export type ObjectiveName = "mean" | "worstPair" | "p95";

export interface ConferenceRequest {
  participants: GivenParticipant[];
  expectedParticipants?: number;
  lastN?: number;
  simulcast?: boolean;
  objective?: ObjectiveName;
}

/** Defaults of a request, as in `npm run place`: every stream (last-N -1), simulcast on, the mean RTT. */
export const DEFAULT_LAST_N = -1;
export const DEFAULT_SIMULCAST = true;
export const DEFAULT_OBJECTIVE: ObjectiveName = "mean";

const OBJECTIVES: Readonly<Record<ObjectiveName, Objective>> = { mean: "mean", worstPair: "worstPair", p95: { percentile: 95 } };

export interface RetryPolicy {
  /** Attempts after the first, for transient engine failures only. */
  retries: number;
  /** The first backoff, doubled after each attempt. */
  minTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 3, minTimeoutMs: 1000 };

/** What the service's metrics count; the manager reports, the app owns the registry. */
export interface LifecycleObserver {
  operation(kind: OperationRecord["kind"], result: "succeeded" | "failed" | "cancelled", seconds: number): void;
}

export interface ConferenceManagerOptions {
  store: Store;
  engine: Engine;
  queue: OperationQueue;
  registry: Registry;
  /** The testbed stack a conference's StackReference names. */
  testbedStack: string;
  /** Locates participants given by address; without one, addresses are refused. */
  locator?: IpLocator;
  retry?: RetryPolicy;
  observer?: LifecycleObserver;
  /** Called with failures the background work could not report elsewhere (already recorded). */
  onError?: (error: unknown, context: { conference: string; operation: number }) => void;
}

/** The id a what-if placement is checked under; never recorded. */
const WHAT_IF_ID = "what-if";

/** Conference ids: 12 characters of [a-z0-9], a DNS label with the `conf-` prefix. */
function newConferenceId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...randomBytes(12)].map((byte) => alphabet[byte % alphabet.length]).join("");
}

export class ConferenceManager {
  private readonly store: Store;
  private readonly engine: Engine;
  private readonly queue: OperationQueue;
  private readonly registry: Registry;
  private readonly options: ConferenceManagerOptions;
  private readonly retry: RetryPolicy;
  /** In-flight operations by conference: a stop aborts a deployment, shutdown aborts everything. */
  private readonly controllers = new Map<string, { operation: OperationRecord; controller: AbortController }>();
  private readonly work = new Set<Promise<void>>();
  private closing = false;

  constructor(options: ConferenceManagerOptions) {
    this.options = options;
    this.store = options.store;
    this.engine = options.engine;
    this.queue = options.queue;
    this.registry = options.registry;
    this.retry = options.retry ?? DEFAULT_RETRY;
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
   * Decides and records a conference, and starts its deployment in the background. With an
   * idempotency key, a retry of the same request returns the first conference; the same key with
   * another request is a ConflictError.
   */
  create(owner: string, request: ConferenceRequest, idempotencyKey?: string): ConferenceRecord {
    if (this.closing) {
      throw new ConflictError("the service is shutting down; retry against its next instance");
    }
    const { placementRequest, unplaced } = this.placementRequest(request);
    const result = this.store.createConference(
      {
        owner,
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        requestHash: createHash("sha256").update(JSON.stringify(request)).digest("hex"),
        decide: (running) => {
          const placement = placeConference(placementRequest, candidateClusters(this.registry.clusters(), running));
          const id = newConferenceId();
          return { id, spec: conferenceSpecFor(id, placementRequest, placement), decision: decisionOf(placement, unplaced) };
        },
      },
      conferenceName,
    );
    if (result.outcome === "key-reused") {
      throw new ConflictError(`the Idempotency-Key was used for another request (conference ${result.conference.id}); use a new key for a new conference`);
    }
    if (result.outcome === "created") {
      this.background(result.conference.id, result.operation, () => this.deploy(result.operation));
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

  list(viewer: { subject: string; admin: boolean }, filter: { state?: ConferenceState; limit: number }): ConferenceRecord[] {
    return this.store.conferences({ ...(viewer.admin ? {} : { owner: viewer.subject }), ...filter });
  }

  /** Stops a conference: idempotent; a deployment in flight is cancelled and the destroy follows it. */
  stop(id: string, viewer: { subject: string; admin: boolean }): ConferenceRecord {
    this.get(id, viewer);
    const { conference, operation } = this.store.requestStop(id);
    if (operation !== undefined) {
      const running = this.controllers.get(id);
      if (running?.operation.kind === "up") {
        running.controller.abort(new Error("stopped by its organizer"));
      }
      this.background(id, operation, () => this.destroy(operation));
    }
    return conference;
  }

  /**
   * Finishes what a previous process left: a lock a killed operation held is cleared, state it left
   * pending is repaired with a refresh, and every unfinished operation runs again — a deployment
   * to ready (or failed and cleaned up), a stop or a cleanup to its end. Call before serving.
   */
  async recover(): Promise<number> {
    const unfinished = this.store.unfinishedOperations();
    const byConference = new Map<string, OperationRecord[]>();
    for (const operation of unfinished) {
      byConference.set(operation.conferenceId, [...(byConference.get(operation.conferenceId) ?? []), operation]);
    }
    for (const [conferenceId, operations] of byConference) {
      const stack = operations[0]!.stack;
      if (operations.some((operation) => operation.state === "running")) {
        // No operation of this process runs yet, so any lock is a dead process's.
        await this.queue.run(stack, async () => {
          await this.engine.cancel(stack);
          await this.withRetries(() => this.engine.refresh(stack));
        });
      }
      for (const operation of operations) {
        const conference = this.store.conference(conferenceId)!;
        if (operation.kind === "up" && conference.state === "stopping") {
          // Stopped while it deployed: the destroy after it is what remains.
          this.store.cancelOperation(operation.id);
          continue;
        }
        this.background(conferenceId, operation, () => (operation.kind === "up" ? this.deploy(operation) : this.destroy(operation)));
      }
    }
    return byConference.size;
  }

  /** Stops taking work, cancels what runs (it is resumed at the next start) and waits for it to settle. */
  async close(): Promise<void> {
    this.closing = true;
    for (const { controller } of this.controllers.values()) {
      controller.abort(new Error("the service is shutting down"));
    }
    while (this.work.size > 0) {
      await Promise.allSettled([...this.work]);
    }
  }

  /** Operations running now or waiting for their turn. */
  inFlight(): number {
    return this.work.size;
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
    return {
      placementRequest: {
        participants,
        expectedParticipants: request.expectedParticipants ?? request.participants.length,
        lastN: request.lastN ?? DEFAULT_LAST_N,
        simulcast: request.simulcast ?? DEFAULT_SIMULCAST,
        objective: OBJECTIVES[request.objective ?? DEFAULT_OBJECTIVE],
      },
      unplaced,
    };
  }

  /** Runs `task` when its stack's turn comes; its failures are recorded by the task itself. */
  private background(conferenceId: string, operation: OperationRecord, task: () => Promise<void>): void {
    const running = this.queue
      .run(operation.stack, task)
      .catch((error: unknown) => this.options.onError?.(error, { conference: conferenceId, operation: operation.id }))
      .finally(() => this.work.delete(running));
    this.work.add(running);
  }

  private withRetries<T>(attempt: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return pRetry(attempt, {
      retries: this.retry.retries,
      minTimeout: this.retry.minTimeoutMs,
      factor: 2,
      ...(signal === undefined ? {} : { signal }),
      shouldRetry: ({ error }) => isEngineError(error) && error.transient && !this.closing,
    });
  }

  /** Runs one operation of the engine with its record, progress and metrics. */
  private async run<T>(operation: OperationRecord, attempt: (signal: AbortSignal, onEvent: (event: EngineEvent) => void) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    this.controllers.set(operation.conferenceId, { operation, controller });
    const started = performance.now();
    const onEvent = (event: EngineEvent) => {
      if (event.type === "progress") {
        this.store.progress(operation.id, event.done, event.total);
      }
    };
    try {
      // Every attempt is recorded as one (the record's `attempts`), and restarts the progress.
      const result = await this.withRetries(() => {
        this.store.startOperation(operation.id);
        return attempt(controller.signal, onEvent);
      }, controller.signal);
      this.options.observer?.operation(operation.kind, "succeeded", (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      const cancelled = controller.signal.aborted;
      this.options.observer?.operation(operation.kind, cancelled ? "cancelled" : "failed", (performance.now() - started) / 1000);
      throw error;
    } finally {
      this.controllers.delete(operation.conferenceId);
    }
  }

  private async deploy(operation: OperationRecord): Promise<void> {
    const conference = this.store.conference(operation.conferenceId)!;
    if (this.closing) {
      // Left queued: the next start runs it.
      return;
    }
    if (conference.state === "stopping") {
      this.store.cancelOperation(operation.id);
      return;
    }
    let outputs: Record<string, unknown>;
    try {
      outputs = await this.run(operation, (signal, onEvent) =>
        this.engine.up({ stack: operation.stack, config: conferenceStackConfig(conference.spec, this.options.testbedStack) }, { signal, onEvent }),
      );
    } catch (error) {
      if (this.closing) {
        // Left unfinished on purpose: the next start resumes it.
        return;
      }
      if (this.store.conference(conference.id)!.state === "stopping") {
        // Cancelled by its stop, whose destroy runs next on this stack.
        this.store.cancelOperation(operation.id);
        return;
      }
      // A failed create leaves nothing behind: its stack is destroyed before the failure is told.
      await this.destroy(this.store.failUp(operation.id, reasonOf(error)));
      return;
    }
    this.store.completeUp(operation.id, outputs, String(outputs.url));
  }

  /** Destroys the stack, after a stop or to clean up a failed create; the store says which it was. */
  private async destroy(operation: OperationRecord): Promise<void> {
    if (this.closing) {
      return;
    }
    try {
      await this.run(operation, (signal, onEvent) => this.engine.destroy(operation.stack, { signal, onEvent }));
    } catch (error) {
      if (this.closing) {
        return;
      }
      this.store.completeDestroy(operation.id, { error: reasonOf(error) });
      return;
    }
    this.store.completeDestroy(operation.id, {});
  }
}

/** What a record and the stream say about a failure: the engine's message (secrets already masked by it). */
function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
