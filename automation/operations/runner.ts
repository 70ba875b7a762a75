import pRetry from "p-retry";
import { type Engine, type EngineEvent, type OperationKind, type StackConfigMap, isEngineError } from "../engine/engine.ts";
import type { OperationQueue } from "../engine/queue.ts";
import type { OperationRecord } from "../store/records.ts";
import type { ResourceChange } from "../../domain/records.ts";
import { type Store, isStoreUnavailable } from "../store/store.ts";

/**
 * The one runner of stack operations (ARCHITECTURE.md "Layout", operations/): it owns the queue
 * (one operation per stack at a time), retries of transient engine failures, aborts, the
 * operation records and recovery, for any stack — a conference's, a PoP's. What an operation's
 * outcome means for the stack's own records (a conference's state) is its owner's to say: the
 * runner calls the owner inside the transaction that records the outcome, so the two commit
 * together or not at all.
 */

/**
 * What a kind of stack (conferences, PoPs) says about its operations. Every method but `config`
 * runs inside the store transaction that records the step, and writes only through the store.
 */
export interface StackOwner {
  /** Whether `stack` is one of this owner's. */
  owns(stack: string): boolean;
  /** The config the `up` of `operation` brings the stack up with, read as its attempt begins. */
  config(operation: OperationRecord): StackConfigMap;
  /** An attempt of `operation` begins, or is refused with the reason the runner cancels it for (a conference asked to stop). */
  attemptStarted(operation: OperationRecord): true | { refused: string };
  /** Resource steps done of those planned. */
  progress(operation: OperationRecord, done: number, total: number): void;
  upSucceeded(operation: OperationRecord, outputs: Record<string, unknown>): void;
  /** An `up` failed for good: whether the stack is to be destroyed now (a failed create leaves nothing behind). */
  upFailed(operation: OperationRecord, reason: string): boolean;
  /** A destroy ended, with the reason when it failed. */
  destroyEnded(operation: OperationRecord, error: string | undefined): void;
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

/** What the service's metrics count; the runner reports, the app owns the registry. */
export interface OperationObserver {
  operation(kind: OperationKind, result: "succeeded" | "failed" | "cancelled", seconds: number): void;
  /** A background write the store refused after its retries: the operation is left for the reconciler. */
  unrecorded(kind: OperationKind): void;
}

export interface OperationRunnerOptions {
  store: Store;
  engine: Engine;
  queue: OperationQueue;
  owners: StackOwner[];
  retry?: RetryPolicy;
  /** Retries of a background write the store refused. Defaults to DEFAULT_RECORD_RETRY. */
  recordRetry?: RetryPolicy;
  observer?: OperationObserver;
  /** Called with failures the background work could not report elsewhere. */
  onError?: (error: unknown, context: { operation: number; stack: string }) => void;
}

export class OperationRunner {
  private readonly store: Store;
  private readonly engine: Engine;
  private readonly queue: OperationQueue;
  private readonly options: OperationRunnerOptions;
  private readonly retry: RetryPolicy;
  private readonly recordRetry: RetryPolicy;
  /** The operation running now on each stack, with what aborts it. */
  private readonly controllers = new Map<string, { operation: OperationRecord; controller: AbortController }>();
  /** Operations this process has queued or runs, by id, with their stack. */
  private readonly active = new Map<number, string>();
  private readonly work = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(options: OperationRunnerOptions) {
    this.options = options;
    this.store = options.store;
    this.engine = options.engine;
    this.queue = options.queue;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.recordRetry = options.recordRetry ?? DEFAULT_RECORD_RETRY;
  }

  /** Whether the runner has stopped taking work (the service is shutting down). */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Runs a recorded operation in the background, when its stack's turn comes. */
  submit(operation: OperationRecord): OperationRecord {
    this.background(operation);
    return operation;
  }

  /**
   * Queues an `up` of `stack`, or joins the one that waits: while one runs, only the newest waits.
   * The owner reads an `up`'s config as its attempt begins, so the `up` that waits applies whatever
   * is newest when its turn comes. Returns the operation and whether it was one already waiting.
   */
  submitUp(stack: string): { operation: OperationRecord; joined: boolean } {
    return this.store.atomically(() => {
      const waiting = this.store.waitingOperation(stack, "up");
      if (waiting !== undefined && this.active.has(waiting.id)) {
        return { operation: waiting, joined: true };
      }
      return { operation: this.submit(this.store.queueOperation(stack, "up")), joined: false };
    });
  }

  /** Aborts the `up` running on `stack`, if one runs here; its record is the caller's to end. */
  abortUp(stack: string, reason: string): void {
    const running = this.controllers.get(stack);
    if (running?.operation.kind === "up") {
      running.controller.abort(new Error(reason));
    }
  }

  /**
   * Runs every operation the records say is unfinished and no one in this process runs: at start,
   * what a previous process left; later, what this one could not record. A stack an interrupted
   * operation may have left locked or pending is repaired first (its lock cleared, its state
   * refreshed). Returns how many stacks it resumed.
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
      // running, or an `up` a stop cancelled in the record while its engine call was still ending
      // when the process died. Such an attempt may also have left operations pending.
      const interrupted =
        operations.some((operation) => operation.state === "running") ||
        this.store.operations(stack).some((operation) => operation.kind === "up" && operation.state === "cancelled" && operation.attempts > 0);
      const repair = this.queue.run(stack, async () => {
        await this.engine.cancel(stack);
        if (interrupted) {
          await this.withRetries(() => this.engine.refresh(stack));
        }
      });
      this.track(repair.catch((error: unknown) => this.options.onError?.(error, { operation: operations[0]!.id, stack })));
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

  private ownerOf(stack: string): StackOwner {
    const owner = this.options.owners.find((candidate) => candidate.owns(stack));
    if (owner === undefined) {
      throw new Error(`no owner for the stack ${stack}: its operations cannot be run`);
    }
    return owner;
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
    const task = () => (operation.kind === "destroy" ? this.destroy(operation) : this.deploy(operation));
    this.track(
      this.queue
        .run(operation.stack, task)
        .catch((error: unknown) => {
          if (isStoreUnavailable(error)) {
            this.options.observer?.unrecorded(operation.kind);
          }
          this.options.onError?.(error, { operation: operation.id, stack: operation.stack });
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
   * Runs one operation of the engine with its record, progress and metrics. `ran` is false when the
   * operation must not run (it is over, or its owner refused its start).
   */
  private async run<T>(
    operation: OperationRecord,
    attempt: (signal: AbortSignal, onEvent: (event: EngineEvent) => void) => Promise<T>,
  ): Promise<{ ran: false } | { ran: true; result: T; changes: ResourceChange[] }> {
    const owner = this.ownerOf(operation.stack);
    const controller = new AbortController();
    this.controllers.set(operation.stack, { operation, controller });
    const started = performance.now();
    let changes: ResourceChange[] = [];
    const onEvent = (event: EngineEvent) => {
      if (event.type === "change") {
        changes.push({ resource: event.resource, resourceType: event.resourceType, action: event.action });
        return;
      }
      if (event.type === "progress") {
        try {
          this.store.atomically(() => owner.progress(operation, event.done, event.total));
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
        changes = [];
        if (!(await this.record(() => this.beginAttempt(owner, operation)))) {
          ran = false;
          return undefined;
        }
        return attempt(controller.signal, onEvent);
      }, controller.signal);
      if (!ran) {
        return { ran: false };
      }
      this.options.observer?.operation(operation.kind, "succeeded", (performance.now() - started) / 1000);
      return { ran: true, result: result as T, changes };
    } catch (error) {
      if (!isStoreUnavailable(error)) {
        this.options.observer?.operation(operation.kind, controller.signal.aborted ? "cancelled" : "failed", (performance.now() - started) / 1000);
      }
      throw error;
    } finally {
      this.controllers.delete(operation.stack);
    }
  }

  /** Records an attempt's start, or the operation's cancellation when its owner refuses it; false when it must not run. */
  private beginAttempt(owner: StackOwner, operation: OperationRecord): boolean {
    return this.store.atomically(() => {
      const current = this.store.operation(operation.id)!;
      if (current.state !== "queued" && current.state !== "running") {
        return false;
      }
      const started = owner.attemptStarted(current);
      if (started !== true) {
        this.store.endOperation(operation.id, "cancelled", { error: started.refused });
        return false;
      }
      return this.store.beginAttempt(operation.id);
    });
  }

  /** Brings the stack up; a failed `up` whose owner asks for it is cleaned up by a destroy, before the failure is told. */
  private async deploy(operation: OperationRecord): Promise<void> {
    if (this.closing) {
      // Left queued: the next start runs it.
      return;
    }
    const owner = this.ownerOf(operation.stack);
    let outcome: Awaited<ReturnType<typeof this.run<Record<string, unknown>>>>;
    try {
      outcome = await this.run(operation, (signal, onEvent) =>
        this.engine.up({ stack: operation.stack, config: owner.config(operation) }, { signal, onEvent }),
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
      const reason = reasonOf(error);
      // An `up` a stop cancelled in the record meanwhile ends as that; its destroy runs next on this stack.
      const cleanup = await this.record(() =>
        this.store.atomically(() => {
          if (!this.store.endOperation(operation.id, "failed", { error: reason })) {
            return undefined;
          }
          const destroy = owner.upFailed(operation, reason) && this.store.unfinishedOperation(operation.stack, "destroy") === undefined;
          return destroy ? this.store.queueOperation(operation.stack, "destroy") : undefined;
        }),
      );
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
      const { result, changes } = outcome;
      await this.record(() =>
        this.store.atomically(() => {
          if (this.store.endOperation(operation.id, "succeeded", { outputs: result, ...(changes.length === 0 ? {} : { changes }) })) {
            owner.upSucceeded(operation, result);
          }
        }),
      );
    }
  }

  /** Destroys the stack, after a stop or to clean up a failed `up`; its owner says what that means for its records. */
  private async destroy(operation: OperationRecord): Promise<void> {
    if (this.closing) {
      return;
    }
    const owner = this.ownerOf(operation.stack);
    let error: string | undefined;
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
      error = reasonOf(caught);
    }
    await this.record(() =>
      this.store.atomically(() => {
        if (this.store.endOperation(operation.id, error === undefined ? "succeeded" : "failed", error === undefined ? {} : { error })) {
          owner.destroyEnded(operation, error);
        }
      }),
    );
  }
}

/** What a record and the stream say about a failure: the engine's message (secrets already masked by it). */
function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
