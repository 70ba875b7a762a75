import pRetry from "p-retry";
import type { z } from "zod";
import { createHash, randomBytes } from "node:crypto";
import { type ConferenceState, mayDeploy } from "../../domain/conference-lifecycle.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { candidateClusters } from "../../domain/decision/candidates.ts";
import { conferenceSpecFor, conferenceStackConfig } from "../../domain/decision/conference-config.ts";
import { type Placement, placeConference } from "../../domain/decision/placement.ts";
import type { Objective, Participant, PlacementRequest } from "../../domain/decision/schema.ts";
import { ConflictError, InvalidArgumentsError, NotFoundError } from "../../domain/errors.ts";
import { type Engine, type EngineEvent, isEngineError } from "../engine/engine.ts";
import type { OperationQueue } from "../engine/queue.ts";
import type { IpLocator } from "../geolocation/ip-locator.ts";
import type { Decision, OperationRecord } from "../store/records.ts";
import { type ConferenceRecord, type ListCursor, type Store, isStoreUnavailable } from "../store/store.ts";
import type { ClusterRegistry } from "./registry.ts";
import type { conferenceRequest } from "./schemas.ts";

/**
 * The conference lifecycle (ARCHITECTURE.md, the paper's Fig. 1 made durable): decide, record,
 * then run the stack's operations in the background through the queue — `up` to ready, or a failed
 * create cleaned up; `destroy` to stopped — and reconcile: finish what a dead process left, and
 * what this one could not record (the store locked or its disk full), once the store takes writes.
 * Transitions are the lifecycle table's (domain/conference-lifecycle.ts); this module runs the
 * operations they call for.
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

export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  /** The first backoff, doubled after each attempt. */
  minTimeoutMs: number;
}

/** Transient engine failures: a lock a live process holds, a backend that did not answer. */
const DEFAULT_RETRY: RetryPolicy = { retries: 3, minTimeoutMs: 1000 };
/**
 * An outcome the store could not take (locked, disk full) is written again for about six seconds
 * (0.2 + 0.4 + 0.8 + 1.6 + 3.2 s); then the operation is left for the reconciler, which runs it
 * again once the store takes writes. Each attempt stalls the process for at most the store's busy
 * timeout.
 */
const DEFAULT_RECORD_RETRY: RetryPolicy = { retries: 5, minTimeoutMs: 200 };
/** How often operations nobody in this process runs are looked for (and the store's health). */
export const DEFAULT_RECONCILE_INTERVAL_MS = 10_000;

/** What the service's metrics count; the manager reports, the app owns the registry. */
export interface LifecycleObserver {
  operation(kind: OperationRecord["kind"], result: "succeeded" | "failed" | "cancelled", seconds: number): void;
  /** A background write the store refused after its retries: the operation is left for the reconciler. */
  unrecorded(kind: OperationRecord["kind"]): void;
}

export interface ConferenceManagerOptions {
  store: Store;
  engine: Engine;
  queue: OperationQueue;
  registry: ClusterRegistry;
  /** The testbed stack a conference's StackReference names. */
  testbedStack: string;
  /** Locates participants given by address; without one, addresses are refused. */
  locator?: IpLocator;
  retry?: RetryPolicy;
  /** Retries of a background write the store refused. Defaults to DEFAULT_RECORD_RETRY. */
  recordRetry?: RetryPolicy;
  observer?: LifecycleObserver;
  /** Called with failures the background work could not report elsewhere. */
  onError?: (error: unknown, context: { conference: string; operation: number; stack: string }) => void;
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
  private readonly registry: ClusterRegistry;
  private readonly options: ConferenceManagerOptions;
  private readonly retry: RetryPolicy;
  private readonly recordRetry: RetryPolicy;
  /** In-flight operations by conference: a stop aborts a deployment, shutdown aborts everything. */
  private readonly controllers = new Map<string, { operation: OperationRecord; controller: AbortController }>();
  /** Operations this process has queued or runs, by id, with their stack. */
  private readonly active = new Map<number, string>();
  private readonly work = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(options: ConferenceManagerOptions) {
    this.options = options;
    this.store = options.store;
    this.engine = options.engine;
    this.queue = options.queue;
    this.registry = options.registry;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.recordRetry = options.recordRetry ?? DEFAULT_RECORD_RETRY;
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
        requestHash: digest(canonicalJson(withDefaults(request))),
        // Keys recorded before issue 16 hold the digest of the request as sent; a retry sent as it was still matches.
        legacyRequestHash: digest(JSON.stringify(request)),
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
      this.background(result.operation);
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
   * Stops a conference: idempotent. A deployment running here is cancelled, one a dead process or
   * an unrecorded outcome left is cancelled in the record, and the destroy follows.
   */
  stop(id: string, viewer: { subject: string; admin: boolean }): ConferenceRecord {
    this.get(id, viewer);
    const { conference, operation } = this.store.requestStop(id);
    const running = this.controllers.get(id);
    if (conference.state === "stopping" && running?.operation.kind === "up") {
      running.controller.abort(new Error("stopped by its organizer"));
    }
    if (operation !== undefined) {
      this.background(operation);
    }
    return conference;
  }

  /**
   * Runs every operation the records say is unfinished and no one in this process runs: at start,
   * what a previous process left; later, what this one could not record. A stack an interrupted
   * operation may have left locked or pending is repaired first (its lock cleared, its state
   * refreshed). A deployment of a conference asked to stop is cancelled, never run. Returns how
   * many conferences it resumed.
   */
  reconcile(): number {
    const byStack = new Map<string, OperationRecord[]>();
    for (const operation of this.store.unfinishedOperations()) {
      if (!this.active.has(operation.id)) {
        byStack.set(operation.stack, [...(byStack.get(operation.stack) ?? []), operation]);
      }
    }
    const busyStacks = new Set(this.active.values());
    let resumed = 0;
    for (const [stack, operations] of byStack) {
      if (busyStacks.has(stack)) {
        // Its turn comes after what runs here; the next pass looks again.
        continue;
      }
      resumed++;
      // Nothing of this process runs on the stack, so a lock is a dead attempt's: one that was
      // running, or a deployment a stop cancelled in the record while its engine call was still
      // ending when the process died. Such an attempt may also have left operations pending.
      const interrupted =
        operations.some((operation) => operation.state === "running") ||
        this.store.operations(operations[0]!.conferenceId).some((operation) => operation.kind === "up" && operation.state === "cancelled" && operation.attempts > 0);
      const repair = this.queue.run(stack, async () => {
        await this.engine.cancel(stack);
        if (interrupted) {
          await this.withRetries(() => this.engine.refresh(stack));
        }
      });
      this.track(repair.catch((error: unknown) => this.options.onError?.(error, { conference: operations[0]!.conferenceId, operation: operations[0]!.id, stack })));
      for (const operation of operations) {
        this.background(operation);
      }
    }
    return resumed;
  }

  /** Reconciles every `intervalMs` while the store takes writes. */
  watch(intervalMs = DEFAULT_RECONCILE_INTERVAL_MS, onError: (error: unknown) => void = () => undefined): void {
    this.timer = setInterval(() => {
      try {
        if (!this.closing && this.store.writable().ok) {
          this.reconcile();
        }
      } catch (error) {
        onError(error);
      }
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops taking work, cancels what runs (it is resumed at the next start) and waits for it to settle. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.timer);
    for (const { controller } of this.controllers.values()) {
      controller.abort(new Error("the service is shutting down"));
    }
    while (this.work.size > 0) {
      await Promise.allSettled([...this.work]);
    }
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

  private track(promise: Promise<void>): void {
    const tracked = promise.finally(() => this.work.delete(tracked));
    this.work.add(tracked);
  }

  /**
   * Runs the operation when its stack's turn comes. What it could not record is left to the
   * reconciler, and reported: the log, the metric, and /readyz while the store refuses writes.
   */
  private background(operation: OperationRecord): void {
    this.active.set(operation.id, operation.stack);
    const task = () => (operation.kind === "up" ? this.deploy(operation) : this.destroy(operation));
    this.track(
      this.queue
        .run(operation.stack, task)
        .catch((error: unknown) => {
          if (isStoreUnavailable(error)) {
            this.options.observer?.unrecorded(operation.kind);
          }
          this.options.onError?.(error, { conference: operation.conferenceId, operation: operation.id, stack: operation.stack });
        })
        .finally(() => this.active.delete(operation.id)),
    );
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

  /** Writes a record, again after a transient refusal of the store (never blocking the process while it waits). */
  private record<T>(write: () => T): Promise<T> {
    return pRetry(write, {
      retries: this.recordRetry.retries,
      minTimeout: this.recordRetry.minTimeoutMs,
      factor: 2,
      shouldRetry: ({ error }) => isStoreUnavailable(error) && error.transient && !this.closing,
    });
  }

  /**
   * Runs one operation of the engine with its record, progress and metrics. False when the
   * operation must not run (it is over, or its conference was stopped before it began).
   */
  private async run<T>(operation: OperationRecord, attempt: (signal: AbortSignal, onEvent: (event: EngineEvent) => void) => Promise<T>): Promise<{ ran: false } | { ran: true; result: T }> {
    const controller = new AbortController();
    this.controllers.set(operation.conferenceId, { operation, controller });
    const started = performance.now();
    const onEvent = (event: EngineEvent) => {
      if (event.type === "progress") {
        try {
          this.store.progress(operation.id, event.done, event.total);
        } catch (error) {
          // Progress is a hint; the outcome is what must be recorded.
          if (!isStoreUnavailable(error)) {
            throw error;
          }
        }
      }
    };
    try {
      // Every attempt is recorded as one (the record's `attempts`), and restarts the progress.
      let ran = true;
      const result = await this.withRetries(async () => {
        if (!(await this.record(() => this.store.startOperation(operation.id)))) {
          ran = false;
          return undefined;
        }
        return attempt(controller.signal, onEvent);
      }, controller.signal);
      if (!ran) {
        return { ran: false };
      }
      this.options.observer?.operation(operation.kind, "succeeded", (performance.now() - started) / 1000);
      return { ran: true, result: result as T };
    } catch (error) {
      if (!isStoreUnavailable(error)) {
        this.options.observer?.operation(operation.kind, controller.signal.aborted ? "cancelled" : "failed", (performance.now() - started) / 1000);
      }
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
    if (!mayDeploy(conference.state)) {
      // Asked to stop before its turn came: the destroy after it is what remains.
      await this.record(() => this.store.cancelOperation(operation.id));
      return;
    }
    let outcome: Awaited<ReturnType<typeof this.run<Record<string, unknown>>>>;
    try {
      outcome = await this.run(operation, (signal, onEvent) =>
        this.engine.up({ stack: operation.stack, config: conferenceStackConfig(conference.spec, this.options.testbedStack) }, { signal, onEvent }),
      );
    } catch (error) {
      if (this.closing) {
        // Left unfinished on purpose: the next start resumes it.
        return;
      }
      if (isStoreUnavailable(error)) {
        // Left for the reconciler, which runs it again once the store takes writes.
        throw error;
      }
      if (this.store.conference(conference.id)!.state === "stopping") {
        // Cancelled by its stop, which cancelled the record too; its destroy runs next on this stack.
        return;
      }
      // A failed create leaves nothing behind: its stack is destroyed before the failure is told.
      const cleanup = await this.record(() => this.store.failUp(operation.id, reasonOf(error)));
      if (cleanup !== undefined) {
        this.active.set(cleanup.id, cleanup.stack);
        try {
          await this.destroy(cleanup);
        } finally {
          this.active.delete(cleanup.id);
        }
      }
      return;
    }
    if (outcome.ran) {
      await this.record(() => this.store.completeUp(operation.id, outcome.result, String(outcome.result.url)));
    }
  }

  /** Destroys the stack, after a stop or to clean up a failed create; the store says which it was. */
  private async destroy(operation: OperationRecord): Promise<void> {
    if (this.closing) {
      return;
    }
    let error: unknown;
    try {
      if (!(await this.run(operation, (signal, onEvent) => this.engine.destroy(operation.stack, { signal, onEvent }))).ran) {
        return;
      }
    } catch (caught) {
      if (this.closing) {
        return;
      }
      if (isStoreUnavailable(caught)) {
        throw caught;
      }
      error = caught;
    }
    await this.record(() => this.store.completeDestroy(operation.id, error === undefined ? {} : { error: reasonOf(error) }));
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
