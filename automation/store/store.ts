import Database from "better-sqlite3";
import type { z } from "zod";
import { EventEmitter } from "node:events";
import { chmodSync, closeSync, openSync, statSync } from "node:fs";
import { CONFERENCE_STATES, type ConferenceState, HOLDING_STATES } from "../../domain/conference-lifecycle.ts";
import { CONFERENCE_STACK_PREFIX, type ConferenceSpec, conferenceName } from "../../domain/contracts/conference.ts";
import type { RunningConference } from "../../domain/decision/candidates.ts";
import type { OperationKind } from "../engine/engine.ts";
import { MIGRATIONS } from "./migrations.ts";
import type { InstanceManagerReport } from "../../domain/wae/reports.ts";
import { type EventRecord, type OperationRecord, type OperationState, type PopDecision } from "./records.ts";
import { type Decision, type EventType, POP_DECISION_OUTCOMES, type PopDecisionOutcome, type ResourceChange, type conferenceRecord } from "../../domain/records.ts";

/**
 * The service's durable records (ARCHITECTURE.md "Conference lifecycle"): conferences, the
 * operations run on stacks (a conference's, a PoP's), and every event of a stack its progress
 * stream sends. Every record is written before the engine is called, so a restart finds what was
 * in flight. The store persists what it is told and decides nothing: the runner says how an
 * operation ended, a stack's owner (the conference manager) what that does to its records, and
 * `atomically` makes the two one transaction. SQLite through better-sqlite3: synchronous, so a
 * transaction is never interleaved with other work of this process, and `BEGIN IMMEDIATE` keeps
 * it atomic against other processes on the same file.
 */

/** A conference as the store keeps it; the API shows it without its stack config. */
export type ConferenceRecord = z.output<typeof conferenceRecord> & {
  /** The conference stack's config. */
  spec: ConferenceSpec;
};

export interface NewConference {
  owner: string;
  /** With a key, a second create of the same owner and key returns the first conference. */
  idempotencyKey?: string;
  /** A digest of the request, so that a key reused for another request is refused. */
  requestHash: string;
  /**
   * The digest a service before issue 16 recorded for this request (of the request as sent, its
   * defaults left out): a key recorded then matches it too. Never recorded.
   */
  legacyRequestHash?: string;
  /**
   * Decides the conference from what holds capacity now; runs inside the transaction, so no other
   * create can take the same capacity between the decision and its record.
   */
  decide: (running: RunningConference[]) => { id: string; spec: ConferenceSpec; decision: Decision };
}

export type CreateResult =
  | { outcome: "created"; conference: ConferenceRecord }
  | { outcome: "existing"; conference: ConferenceRecord }
  | { outcome: "key-reused"; conference: ConferenceRecord };

interface ConferenceRow {
  id: string;
  owner: string;
  state: ConferenceState;
  cluster: string;
  decision: string;
  spec: string;
  url: string | null;
  error: string | null;
  progress_done: number;
  progress_total: number;
  request_hash: string;
  created_at: string;
  updated_at: string;
}

interface OperationRow {
  id: number;
  stack: string;
  kind: OperationKind;
  state: OperationState;
  attempts: number;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  error: string | null;
  outputs: string | null;
  changes: string | null;
}

interface EventRow {
  id: number;
  stack: string;
  type: EventType;
  data: string;
  at: string;
}

export interface StoreOptions {
  /** A file path, or ":memory:". */
  path: string;
  /** The clock, injected so that tests can hold it. Defaults to the system's. */
  now?: () => Date;
  /** How long a write waits for another process's lock. Defaults to DEFAULT_BUSY_TIMEOUT_MS. */
  busyTimeoutMs?: number;
}

/**
 * The longest a write waits for another process's lock. better-sqlite3 is synchronous, so this is
 * how long the whole process (probes and reads included) may stall on a foreign lock; past it the
 * write fails with a StoreUnavailableError and the caller retries later, off the event loop.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 200;

/** A conference list's position: the last conference of the page before (lists are newest first). */
export interface ListCursor {
  createdAt: string;
  id: string;
}

/**
 * The store cannot be written now: locked by another process past the busy timeout, a full disk,
 * an I/O error (transient: a retry may succeed), or its file deleted or replaced while the service
 * ran (never transient: what this process writes would be lost). The message names the cause and
 * never a record's contents.
 */
export class StoreUnavailableError extends Error {
  override readonly name = "StoreUnavailableError";
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

export function isStoreUnavailable(error: unknown): error is StoreUnavailableError {
  return error instanceof StoreUnavailableError;
}

/** SQLite's result codes for a write that failed for want of the file, not for what was written. */
function unavailableCause(code: string): string | undefined {
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return "the database is locked by another process";
  }
  if (code === "SQLITE_FULL") {
    return "the disk holding the database is full";
  }
  if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_READONLY") || code === "SQLITE_CANTOPEN") {
    return `the database file cannot be written (${code})`;
  }
  return undefined;
}

/**
 * What opening a file that is no SQLite database (overwritten) or a damaged one (truncated) is
 * thrown as: SQLite's own "file is not a database" names neither the file nor what to do. Opening
 * reads the header and the schema, which is where a truncated file shows; damage deeper in the file
 * shows when a read reaches it. Any other failure is thrown as it is.
 */
function unreadableFile(path: string, error: unknown): unknown {
  const code = (error as { code?: string }).code ?? "";
  if (code !== "SQLITE_NOTADB" && !code.startsWith("SQLITE_CORRUPT")) {
    return error;
  }
  // The stacks are compared with the records at every start (OrphanStacks.scan): an empty store owns none of them.
  return new Error(
    `${path} is not a SQLite database, or is damaged: restore it from a backup, or move it aside (with its -wal and -shm files) to start with an empty store; the conference stacks it tracked stay in the backend and are listed as orphans at GET /v1/orphan-stacks`,
    { cause: error },
  );
}

export class Store {
  private readonly db: Database.Database;
  private readonly path: string;
  private readonly now: () => Date;
  private readonly busyTimeoutMs: number;
  private readonly emitter = new EventEmitter();
  /** The file this connection opened; another one at the path means it was replaced. */
  private readonly identity: { dev: number; ino: number } | undefined;
  /** Why this process must never write again: its file is gone. */
  private lost: string | undefined;
  /** Why the last write failed, until one succeeds. */
  private lastFailure: string | undefined;
  /** Events written by the transaction in progress, sent to listeners once it commits. */
  private pending: EventRecord[] = [];

  constructor(options: StoreOptions) {
    this.path = options.path;
    if (options.path !== ":memory:") {
      // Owners, idempotency keys and links are nobody else's: 0600 whatever the file had before.
      closeSync(openSync(options.path, "a", 0o600));
      chmodSync(options.path, 0o600);
    }
    this.db = new Database(options.path);
    this.now = options.now ?? (() => new Date());
    this.busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    try {
      // WAL: readers never block the writer; NORMAL is durable across a process crash (kill -9),
      // which is the failure this store is for (https://www.sqlite.org/wal.html).
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = NORMAL");
      this.db.pragma("foreign_keys = ON");
      this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      this.migrate();
    } catch (error) {
      this.db.close();
      throw unreadableFile(options.path, error);
    }
    if (options.path !== ":memory:") {
      // SQLite gives its WAL and shared-memory files the database's mode; files an older service
      // left keep theirs unless told.
      for (const suffix of ["-wal", "-shm"]) {
        chmodSync(`${options.path}${suffix}`, 0o600);
      }
      const { dev, ino } = statSync(options.path);
      this.identity = { dev, ino };
    }
    // Listeners are the service's event streams, bounded by the service's stream caps.
    this.emitter.setMaxListeners(0);
  }

  close(): void {
    this.db.close();
  }

  /** Listens to every event once its transaction has committed. Returns the unsubscribe. */
  onEvent(listener: (event: EventRecord) => void): () => void {
    this.emitter.on("event", listener);
    return () => this.emitter.off("event", listener);
  }

  /** The schema version the database is at. */
  version(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.version();
    if (current > MIGRATIONS.length) {
      throw new Error(`the database is at schema version ${current}, newer than this service's ${MIGRATIONS.length}; run a newer switch-vaas or another data directory`);
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[version]!);
        this.db.pragma(`user_version = ${version + 1}`);
      }).immediate();
    }
  }

  /** Throws when the file this connection writes is no longer the one at its path. */
  private checkIdentity(): void {
    if (this.lost === undefined && this.identity !== undefined) {
      let current: { dev: number; ino: number } | undefined;
      try {
        current = statSync(this.path);
      } catch {
        current = undefined;
      }
      if (current?.dev !== this.identity.dev || current.ino !== this.identity.ino) {
        this.lost = `the database file ${this.path} was deleted or replaced while the service ran; what it would write now is lost at the next start — restore the file (or start anew on another data directory) and restart the service`;
      }
    }
    if (this.lost !== undefined) {
      throw new StoreUnavailableError(this.lost, false);
    }
  }

  /**
   * Whether a write would succeed now: the file is still this connection's, no other process holds
   * the write lock, and a real write (the schema version, rewritten as it is) reaches the disk.
   * Waits for no lock, so a probe never stalls the process.
   */
  writable(): { ok: true } | { ok: false; reason: string } {
    try {
      this.checkIdentity();
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
    this.db.pragma("busy_timeout = 0");
    try {
      this.db.transaction(() => this.db.pragma(`user_version = ${this.version()}`)).immediate();
      this.lastFailure = undefined;
      return { ok: true };
    } catch (error) {
      const cause = unavailableCause((error as { code?: string }).code ?? "");
      if (cause === undefined) {
        throw error;
      }
      return { ok: false, reason: cause };
    } finally {
      this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
    }
  }

  /** Why the last write failed, while no write has succeeded since. */
  lastWriteFailure(): string | undefined {
    return this.lost ?? this.lastFailure;
  }

  /**
   * Runs `work` in one immediate transaction and then tells listeners about the events it wrote.
   * A failure of the file (not of the records) rolls the whole transaction back and is thrown as a
   * StoreUnavailableError: the database keeps its last good state. Within a transaction it is part
   * of that transaction: what a stack's owner records about an operation's outcome commits with
   * the outcome, or neither does.
   */
  atomically<T>(work: () => T): T {
    if (this.db.inTransaction) {
      return work();
    }
    this.checkIdentity();
    this.pending = [];
    let result: T;
    try {
      result = this.db.transaction(work).immediate();
    } catch (error) {
      this.pending = [];
      const cause = unavailableCause((error as { code?: string }).code ?? "");
      if (cause === undefined) {
        throw error;
      }
      this.lastFailure = cause;
      throw new StoreUnavailableError(`${cause}; nothing of this change was recorded`, true);
    }
    this.lastFailure = undefined;
    const events = this.pending;
    this.pending = [];
    for (const event of events) {
      this.emitter.emit("event", event);
    }
    return result;
  }

  private stamp(): string {
    return this.now().toISOString();
  }

  // Stacks' operations and events: any stack's, the runner's records.

  /** Records an event of `stack`; listeners hear it once its transaction commits. */
  appendEvent(stack: string, type: EventType, data: Record<string, unknown> = {}): void {
    this.atomically(() => {
      const at = this.stamp();
      const { lastInsertRowid } = this.db.prepare("INSERT INTO events (stack, type, data, at) VALUES (?, ?, ?, ?)").run(stack, type, JSON.stringify(data), at);
      this.pending.push({ id: Number(lastInsertRowid), stack, type, data, at });
    });
  }

  /** Queues an operation on `stack`. */
  queueOperation(stack: string, kind: OperationKind): OperationRecord {
    return this.atomically(() => {
      const { lastInsertRowid } = this.db.prepare("INSERT INTO operations (stack, kind, state, created_at) VALUES (?, ?, 'queued', ?)").run(stack, kind, this.stamp());
      return this.operation(Number(lastInsertRowid))!;
    });
  }

  operation(id: number): OperationRecord | undefined {
    const row = this.db.prepare("SELECT * FROM operations WHERE id = ?").get(id) as OperationRow | undefined;
    return row === undefined ? undefined : operationOf(row);
  }

  /** The operations of `stack`, oldest first. */
  operations(stack: string): OperationRecord[] {
    return (this.db.prepare("SELECT * FROM operations WHERE stack = ? ORDER BY id").all(stack) as OperationRow[]).map(operationOf);
  }

  /** Operations left queued or running (by a process that died, or that could not record their end), oldest first. */
  unfinishedOperations(): OperationRecord[] {
    return (this.db.prepare("SELECT * FROM operations WHERE state IN ('queued', 'running') ORDER BY id").all() as OperationRow[]).map(operationOf);
  }

  /** The unfinished operation of `kind` on `stack`, if there is one. */
  unfinishedOperation(stack: string, kind: OperationKind): OperationRecord | undefined {
    const row = this.db.prepare("SELECT * FROM operations WHERE stack = ? AND kind = ? AND state IN ('queued', 'running') ORDER BY id LIMIT 1").get(stack, kind) as
      | OperationRow
      | undefined;
    return row === undefined ? undefined : operationOf(row);
  }

  /** The newest operation of `kind` on `stack` that waits for its first attempt. */
  waitingOperation(stack: string, kind: OperationKind): OperationRecord | undefined {
    const row = this.db.prepare("SELECT * FROM operations WHERE stack = ? AND kind = ? AND state = 'queued' ORDER BY id DESC LIMIT 1").get(stack, kind) as OperationRow | undefined;
    return row === undefined ? undefined : operationOf(row);
  }

  /** Every stack an operation was recorded for: what the service owns. */
  stacks(): Set<string> {
    return new Set((this.db.prepare("SELECT DISTINCT stack FROM operations").all() as { stack: string }[]).map((row) => row.stack));
  }

  /** An attempt of an operation that has not ended begins (again, after a retry or a restart). False when it has ended. */
  beginAttempt(id: number): boolean {
    return this.atomically(
      () => this.db.prepare("UPDATE operations SET state = 'running', attempts = attempts + 1, started_at = ? WHERE id = ? AND state IN ('queued', 'running')").run(this.stamp(), id).changes === 1,
    );
  }

  /** Ends an operation that has not ended; false when it had (a stop cancelled it meanwhile), and nothing changes. */
  endOperation(id: number, state: Exclude<OperationState, "queued" | "running">, result: { error?: string; outputs?: Record<string, unknown>; changes?: ResourceChange[] } = {}): boolean {
    return this.atomically(
      () =>
        this.db
          .prepare("UPDATE operations SET state = ?, ended_at = ?, error = ?, outputs = ?, changes = ? WHERE id = ? AND state IN ('queued', 'running')")
          .run(
            state,
            this.stamp(),
            result.error ?? null,
            result.outputs === undefined ? null : JSON.stringify(result.outputs),
            result.changes === undefined ? null : JSON.stringify(result.changes),
            id,
          ).changes === 1,
    );
  }

  /** Cancels every unfinished operation of `kind` on `stack`, saying why. */
  cancelOperations(stack: string, kind: OperationKind, reason: string): void {
    this.atomically(() =>
      this.db.prepare("UPDATE operations SET state = 'cancelled', ended_at = ?, error = ? WHERE stack = ? AND kind = ? AND state IN ('queued', 'running')").run(this.stamp(), reason, stack, kind),
    );
  }

  /** A stack's events after `afterId` (0 for all), oldest first: what a reconnecting stream missed. */
  eventsAfter(stack: string, afterId: number): EventRecord[] {
    return (this.db.prepare("SELECT * FROM events WHERE stack = ? AND id > ? ORDER BY id").all(stack, afterId) as EventRow[]).map(eventOf);
  }

  // Conferences: what the conference manager decides, recorded.

  /** What holds capacity now: every conference in a holding state, or whose stack outlived a failed destroy. */
  running(): RunningConference[] {
    const rows = this.db
      .prepare(`SELECT spec FROM conferences c WHERE state IN (${HOLDING_STATES.map(() => "?").join(", ")}) OR (state = 'failed' AND ${LAST_DESTROY_FAILED})`)
      .all(...HOLDING_STATES) as { spec: string }[];
    return rows.map((row) => {
      const spec = JSON.parse(row.spec) as ConferenceSpec;
      return { cluster: spec.cluster, resources: spec.resources };
    });
  }

  /**
   * Places and records a conference, `placed`, with its first event; within the caller's
   * transaction when there is one (the conference manager queues its `up` in the same).
   */
  createConference(input: NewConference): CreateResult {
    return this.atomically(() => {
      if (input.idempotencyKey !== undefined) {
        const row = this.db.prepare("SELECT * FROM conferences WHERE owner = ? AND idempotency_key = ?").get(input.owner, input.idempotencyKey) as ConferenceRow | undefined;
        if (row !== undefined) {
          const sameRequest = row.request_hash === input.requestHash || row.request_hash === input.legacyRequestHash;
          return { outcome: sameRequest ? "existing" : "key-reused", conference: conferenceOf(row) };
        }
      }
      const { id, spec, decision } = input.decide(this.running());
      const at = this.stamp();
      this.db
        .prepare(
          `INSERT INTO conferences (id, owner, state, cluster, decision, spec, idempotency_key, request_hash, created_at, updated_at)
           VALUES (?, ?, 'placed', ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(id, input.owner, spec.cluster, JSON.stringify(decision), JSON.stringify(spec), input.idempotencyKey ?? null, input.requestHash, at, at);
      this.appendEvent(conferenceName(id), "placed", { cluster: spec.cluster, resources: spec.resources });
      return { outcome: "created", conference: this.conference(id)! };
    });
  }

  /**
   * Records a conference's new state with the stream's event of the same name. Entering
   * `deploying` restarts the progress (every attempt does); `failed` keeps its reason.
   */
  setConferenceState(id: string, state: ConferenceState, data: { url?: string; reason?: string } = {}): void {
    this.atomically(() => {
      if (state === "deploying") {
        this.db.prepare("UPDATE conferences SET progress_done = 0, progress_total = 0 WHERE id = ?").run(id);
      }
      this.db
        .prepare("UPDATE conferences SET state = ?, url = coalesce(?, url), error = coalesce(?, error), updated_at = ? WHERE id = ?")
        .run(state, data.url ?? null, state === "failed" ? (data.reason ?? null) : null, this.stamp(), id);
      this.appendEvent(conferenceName(id), state, state === "deploying" ? { done: 0, total: 0 } : data);
    });
  }

  /** Resource steps done of those planned, of the operation running on the conference's stack. */
  setConferenceProgress(id: string, done: number, total: number): void {
    this.atomically(() => this.db.prepare("UPDATE conferences SET progress_done = ?, progress_total = ?, updated_at = ? WHERE id = ?").run(done, total, this.stamp(), id));
  }

  /** Whether the conference's last operation is a destroy that failed: its stack and resources still exist. */
  stackLeft(id: string): boolean {
    return this.db.prepare(`SELECT 1 FROM conferences c WHERE id = ? AND ${LAST_DESTROY_FAILED}`).get(id) !== undefined;
  }

  conference(id: string): ConferenceRecord | undefined {
    const row = this.db.prepare("SELECT * FROM conferences WHERE id = ?").get(id) as ConferenceRow | undefined;
    return row === undefined ? undefined : conferenceOf(row);
  }

  /**
   * Conferences newest first, of one owner or of all, in one state or any: `limit` of them after
   * `after` (the last one of the page before), and the cursor of the next page when there is one.
   */
  conferences(filter: { owner?: string; state?: ConferenceState; limit: number; after?: ListCursor }): { conferences: ConferenceRecord[]; next?: ListCursor } {
    const rows = this.db
      .prepare(
        `SELECT * FROM conferences WHERE (@owner IS NULL OR owner = @owner) AND (@state IS NULL OR state = @state)
           AND (@afterCreatedAt IS NULL OR (created_at, id) < (@afterCreatedAt, @afterId))
         ORDER BY created_at DESC, id DESC LIMIT @limit`,
      )
      .all({
        owner: filter.owner ?? null,
        state: filter.state ?? null,
        afterCreatedAt: filter.after?.createdAt ?? null,
        afterId: filter.after?.id ?? null,
        // One more than asked says whether a next page exists.
        limit: filter.limit + 1,
      }) as ConferenceRow[];
    const conferences = rows.slice(0, filter.limit).map(conferenceOf);
    const last = conferences.at(-1);
    return rows.length > filter.limit && last !== undefined ? { conferences, next: { createdAt: last.createdAt, id: last.id } } : { conferences };
  }

  countByState(): Record<ConferenceState, number> {
    const counts = Object.fromEntries(CONFERENCE_STATES.map((state) => [state, 0])) as Record<ConferenceState, number>;
    for (const row of this.db.prepare("SELECT state, count(*) AS n FROM conferences GROUP BY state").all() as { state: ConferenceState; n: number }[]) {
      counts[row.state] = row.n;
    }
    return counts;
  }

  /**
   * Deletes, with their stacks' operations and events, up to `limit` conferences that ended
   * before `endedBefore` and left no stack behind (stopped, or failed with nothing left to
   * destroy). Returns how many it deleted.
   */
  prune(endedBefore: Date, limit: number): number {
    return this.atomically(() => {
      const ids = (
        this.db
          .prepare(`SELECT id FROM conferences c WHERE state IN ('stopped', 'failed') AND updated_at < ? AND NOT ${LAST_DESTROY_FAILED} ORDER BY updated_at LIMIT ?`)
          .all(endedBefore.toISOString(), limit) as { id: string }[]
      ).map((row) => row.id);
      for (const id of ids) {
        this.db.prepare("DELETE FROM events WHERE stack = ?").run(conferenceName(id));
        this.db.prepare("DELETE FROM operations WHERE stack = ?").run(conferenceName(id));
        this.db.prepare("DELETE FROM conferences WHERE id = ?").run(id);
      }
      return ids.length;
    });
  }

  // The PoP loop's records.

  /**
   * Keeps a host's report of a period: `accepted` the first time, `duplicate` when the same bytes
   * came before (a resend: never counted twice), `conflict` when another report of that period did.
   */
  recordReport(pop: string, report: InstanceManagerReport, digest: string): "accepted" | "duplicate" | "conflict" {
    return this.atomically(() => {
      const existing = this.db.prepare("SELECT digest FROM pop_reports WHERE pop = ? AND host = ? AND period_start = ?").get(pop, report.host, report.periodStart) as
        | { digest: string }
        | undefined;
      if (existing !== undefined) {
        return existing.digest === digest ? "duplicate" : "conflict";
      }
      this.db
        .prepare("INSERT INTO pop_reports (pop, host, period_start, period_end, digest, report, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .run(pop, report.host, report.periodStart, report.periodEnd, digest, JSON.stringify(report), this.stamp());
      return "accepted";
    });
  }

  /** The latest period a host reported, if any. */
  lastReport(pop: string, host: string): { periodStart: string; periodEnd: string; digest: string } | undefined {
    const row = this.db.prepare("SELECT period_start, period_end, digest FROM pop_reports WHERE pop = ? AND host = ? ORDER BY period_start DESC LIMIT 1").get(pop, host) as
      | { period_start: string; period_end: string; digest: string }
      | undefined;
    return row === undefined ? undefined : { periodStart: row.period_start, periodEnd: row.period_end, digest: row.digest };
  }

  /** The reports whose period ended after `from` and no later than `to`, oldest first. */
  reportsEnding(pop: string, from: Date, to: Date): InstanceManagerReport[] {
    return (
      this.db.prepare("SELECT report FROM pop_reports WHERE pop = ? AND period_end > ? AND period_end <= ? ORDER BY period_end, host").all(pop, from.toISOString(), to.toISOString()) as {
        report: string;
      }[]
    ).map((row) => JSON.parse(row.report) as InstanceManagerReport);
  }

  /** Deletes reports whose period ended before `before`; returns how many. */
  pruneReports(before: Date): number {
    return this.atomically(() => this.db.prepare("DELETE FROM pop_reports WHERE period_end < ?").run(before.toISOString()).changes);
  }

  recordDecision(decision: Omit<PopDecision, "id" | "decidedAt">): PopDecision {
    return this.atomically(() => {
      const { lastInsertRowid } = this.db
        .prepare(
          `INSERT INTO pop_decisions (pop, decided_at, period_start, strategy, outcome, inputs, layout, timings, reason, operation_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          decision.pop,
          this.stamp(),
          decision.periodStart,
          decision.strategy,
          decision.outcome,
          JSON.stringify(decision.inputs),
          JSON.stringify(decision.layout),
          JSON.stringify(decision.timings),
          decision.reason ?? null,
          decision.operationId ?? null,
        );
      return this.decision(Number(lastInsertRowid))!;
    });
  }

  /** What became of a decision, and the `up` that applies it. */
  setDecisionOutcome(id: number, outcome: PopDecisionOutcome, details: { reason?: string; operationId?: number } = {}): void {
    this.atomically(() =>
      this.db
        .prepare("UPDATE pop_decisions SET outcome = ?, reason = coalesce(?, reason), operation_id = coalesce(?, operation_id) WHERE id = ?")
        .run(outcome, details.reason ?? null, details.operationId ?? null, id),
    );
  }

  decision(id: number): PopDecision | undefined {
    const row = this.db.prepare("SELECT * FROM pop_decisions WHERE id = ?").get(id) as DecisionRow | undefined;
    return row === undefined ? undefined : decisionOf(row);
  }

  /** A PoP's newest decision with one of `outcomes` (any outcome when none is given). */
  latestDecision(pop: string, outcomes: readonly PopDecisionOutcome[] = POP_DECISION_OUTCOMES): PopDecision | undefined {
    const row = this.db
      .prepare(`SELECT * FROM pop_decisions WHERE pop = ? AND outcome IN (${outcomes.map(() => "?").join(", ")}) ORDER BY id DESC LIMIT 1`)
      .get(pop, ...outcomes) as DecisionRow | undefined;
    return row === undefined ? undefined : decisionOf(row);
  }

  /** The decisions of `pop` with `outcome`, oldest first. */
  decisionsWithOutcome(pop: string, outcome: PopDecisionOutcome): PopDecision[] {
    return (this.db.prepare("SELECT * FROM pop_decisions WHERE pop = ? AND outcome = ? ORDER BY id").all(pop, outcome) as DecisionRow[]).map(decisionOf);
  }

  /** The decision the `up` `operationId` applies, if it was bound to one. */
  decisionOfOperation(operationId: number): PopDecision | undefined {
    const row = this.db.prepare("SELECT * FROM pop_decisions WHERE operation_id = ? ORDER BY id DESC LIMIT 1").get(operationId) as DecisionRow | undefined;
    return row === undefined ? undefined : decisionOf(row);
  }

  /** A PoP's decisions newest first: `limit` of them before the id `before`, and the id to page on from. */
  decisions(pop: string, page: { limit: number; before?: number }): { decisions: PopDecision[]; next?: number } {
    const rows = this.db.prepare("SELECT * FROM pop_decisions WHERE pop = ? AND id < ? ORDER BY id DESC LIMIT ?").all(pop, page.before ?? Number.MAX_SAFE_INTEGER, page.limit + 1) as DecisionRow[];
    const decisions = rows.slice(0, page.limit).map(decisionOf);
    return rows.length > page.limit ? { decisions, next: decisions.at(-1)!.id } : { decisions };
  }

  /**
   * Deletes the finished operations of `stack` that ended before `before`, but never its newest finished, nor
   * one a kept decision names; returns how many. A PoP's stack lives for ever and is re-upped many
   * times a day: its operations are kept for as long as its decisions are.
   */
  pruneOperations(stack: string, before: Date): number {
    return this.atomically(
      () =>
        this.db
          .prepare(
            `DELETE FROM operations WHERE stack = ? AND state NOT IN ('queued', 'running') AND ended_at < ?
               AND id <> (SELECT max(id) FROM operations WHERE stack = ? AND state NOT IN ('queued', 'running'))
               AND id NOT IN (SELECT operation_id FROM pop_decisions WHERE operation_id IS NOT NULL)`,
          )
          .run(stack, before.toISOString(), stack).changes,
    );
  }

  /**
   * Deletes decisions of periods that began before `before` (the loop's clock), but never a PoP's
   * latest, its latest applied (the layout it runs) nor one still applying; returns how many.
   */
  pruneDecisions(before: Date): number {
    return this.atomically(
      () =>
        this.db
          .prepare(
            `DELETE FROM pop_decisions WHERE period_start < ? AND outcome <> 'applying'
               AND id NOT IN (SELECT max(id) FROM pop_decisions GROUP BY pop)
               AND id NOT IN (SELECT max(id) FROM pop_decisions WHERE outcome = 'applied' GROUP BY pop)`,
          )
          .run(before.toISOString()).changes,
    );
  }
}

/**
 * A conference (aliased `c`) whose last operation is a destroy that failed: its stack and resources
 * still exist, so it still holds its cluster's capacity and may be stopped again.
 */
const LAST_DESTROY_FAILED = `(SELECT kind || ':' || state FROM operations WHERE stack = '${CONFERENCE_STACK_PREFIX}' || c.id ORDER BY id DESC LIMIT 1) = 'destroy:failed'`;

function conferenceOf(row: ConferenceRow): ConferenceRecord {
  return {
    id: row.id,
    owner: row.owner,
    state: row.state,
    cluster: row.cluster,
    decision: JSON.parse(row.decision) as Decision,
    spec: JSON.parse(row.spec) as ConferenceSpec,
    ...(row.url === null ? {} : { url: row.url }),
    ...(row.error === null ? {} : { error: row.error }),
    progress: { done: row.progress_done, total: row.progress_total },
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function operationOf(row: OperationRow): OperationRecord {
  return {
    id: row.id,
    stack: row.stack,
    kind: row.kind,
    state: row.state,
    attempts: row.attempts,
    createdAt: row.created_at,
    ...(row.started_at === null ? {} : { startedAt: row.started_at }),
    ...(row.ended_at === null ? {} : { endedAt: row.ended_at }),
    ...(row.error === null ? {} : { error: row.error }),
    ...(row.outputs === null ? {} : { outputs: JSON.parse(row.outputs) as Record<string, unknown> }),
    ...(row.changes === null ? {} : { changes: JSON.parse(row.changes) as ResourceChange[] }),
  };
}

interface DecisionRow {
  id: number;
  pop: string;
  decided_at: string;
  period_start: string;
  strategy: string;
  outcome: PopDecisionOutcome;
  inputs: string;
  layout: string;
  timings: string;
  reason: string | null;
  operation_id: number | null;
}

function decisionOf(row: DecisionRow): PopDecision {
  return {
    id: row.id,
    pop: row.pop,
    decidedAt: row.decided_at,
    periodStart: row.period_start,
    strategy: row.strategy,
    outcome: row.outcome,
    inputs: JSON.parse(row.inputs) as Record<string, unknown>,
    layout: JSON.parse(row.layout) as Record<string, unknown>,
    timings: JSON.parse(row.timings) as Record<string, number>,
    ...(row.reason === null ? {} : { reason: row.reason }),
    ...(row.operation_id === null ? {} : { operationId: row.operation_id }),
  };
}

function eventOf(row: EventRow): EventRecord {
  return { id: row.id, stack: row.stack, type: row.type, data: JSON.parse(row.data) as Record<string, unknown>, at: row.at };
}
