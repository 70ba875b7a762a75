import Database from "better-sqlite3";
import type { z } from "zod";
import { EventEmitter } from "node:events";
import type { ConferenceSpec } from "../../domain/contracts/conference.ts";
import type { RunningConference } from "../../domain/decision/candidates.ts";
import type { OperationKind } from "../engine/engine.ts";
import { MIGRATIONS } from "./migrations.ts";
import {
  CONFERENCE_STATES,
  type ConferenceState,
  type Decision,
  type EventRecord,
  type EventType,
  HOLDING_STATES,
  type OperationRecord,
  type OperationState,
  TERMINAL_STATES,
  type conferenceRecord,
} from "./records.ts";

/**
 * The service's durable records (ARCHITECTURE.md "Conference lifecycle"): conferences, the
 * operations run on their stacks, and every event the progress stream sends. Every record is
 * written before the engine is called, so a restart finds what was in flight. SQLite through
 * better-sqlite3: synchronous, so a transaction is never interleaved with other work of this
 * process, and `BEGIN IMMEDIATE` keeps it atomic against other processes on the same file.
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
   * Decides the conference from what holds capacity now; runs inside the transaction, so no other
   * create can take the same capacity between the decision and its record.
   */
  decide: (running: RunningConference[]) => { id: string; spec: ConferenceSpec; decision: Decision };
}

export type CreateResult =
  | { outcome: "created"; conference: ConferenceRecord; operation: OperationRecord }
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
  conference_id: string;
  stack: string;
  kind: OperationKind;
  state: OperationState;
  attempts: number;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  error: string | null;
  outputs: string | null;
}

interface EventRow {
  id: number;
  conference_id: string;
  type: EventType;
  data: string;
  at: string;
}

export interface StoreOptions {
  /** A file path, or ":memory:". */
  path: string;
  /** The clock, injected so that tests can hold it. Defaults to the system's. */
  now?: () => Date;
}

export class Store {
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private readonly emitter = new EventEmitter();
  /** Events written by the transaction in progress, sent to listeners once it commits. */
  private pending: EventRecord[] = [];

  constructor(options: StoreOptions) {
    this.db = new Database(options.path);
    this.now = options.now ?? (() => new Date());
    // WAL: readers never block the writer; NORMAL is durable across a process crash (kill -9),
    // which is the failure this store is for (https://www.sqlite.org/wal.html).
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    this.db.pragma("busy_timeout = 5000");
    this.migrate();
    // Listeners are the service's event streams, one per watching client.
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

  /** Runs `work` in one immediate transaction and then tells listeners about the events it wrote. */
  private transaction<T>(work: () => T): T {
    this.pending = [];
    let result: T;
    try {
      result = this.db.transaction(work).immediate();
    } catch (error) {
      this.pending = [];
      throw error;
    }
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

  private appendEvent(conferenceId: string, type: EventType, data: Record<string, unknown> = {}): void {
    const at = this.stamp();
    const { lastInsertRowid } = this.db
      .prepare("INSERT INTO events (conference_id, type, data, at) VALUES (?, ?, ?, ?)")
      .run(conferenceId, type, JSON.stringify(data), at);
    this.pending.push({ id: Number(lastInsertRowid), conferenceId, type, data, at });
  }

  private setState(id: string, state: ConferenceState, fields: { url?: string; error?: string | null } = {}): void {
    this.db
      .prepare("UPDATE conferences SET state = ?, url = coalesce(?, url), error = CASE WHEN ? THEN ? ELSE error END, updated_at = ? WHERE id = ?")
      .run(state, fields.url ?? null, fields.error === undefined ? 0 : 1, fields.error ?? null, this.stamp(), id);
  }

  private insertOperation(conferenceId: string, stack: string, kind: OperationKind): OperationRecord {
    const { lastInsertRowid } = this.db
      .prepare("INSERT INTO operations (conference_id, stack, kind, state, created_at) VALUES (?, ?, ?, 'queued', ?)")
      .run(conferenceId, stack, kind, this.stamp());
    return this.operation(Number(lastInsertRowid))!;
  }

  /** What holds capacity now: every conference in a holding state. */
  running(): RunningConference[] {
    const rows = this.db
      .prepare(`SELECT spec FROM conferences c WHERE state IN (${HOLDING_STATES.map(() => "?").join(", ")}) OR (state = 'failed' AND ${LAST_DESTROY_FAILED})`)
      .all(...HOLDING_STATES) as { spec: string }[];
    return rows.map((row) => {
      const spec = JSON.parse(row.spec) as ConferenceSpec;
      return { cluster: spec.cluster, resources: spec.resources };
    });
  }

  /** Places and records a conference with its first operation (`up`, queued), atomically. */
  createConference(input: NewConference, stackOf: (id: string) => string): CreateResult {
    return this.transaction(() => {
      if (input.idempotencyKey !== undefined) {
        const row = this.db.prepare("SELECT * FROM conferences WHERE owner = ? AND idempotency_key = ?").get(input.owner, input.idempotencyKey) as ConferenceRow | undefined;
        if (row !== undefined) {
          return { outcome: row.request_hash === input.requestHash ? "existing" : "key-reused", conference: conferenceOf(row) };
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
      this.appendEvent(id, "placed", { cluster: spec.cluster, resources: spec.resources });
      const operation = this.insertOperation(id, stackOf(id), "up");
      this.appendEvent(id, "queued", { operation: operation.id, kind: "up" });
      return { outcome: "created", conference: this.conference(id)!, operation };
    });
  }

  conference(id: string): ConferenceRecord | undefined {
    const row = this.db.prepare("SELECT * FROM conferences WHERE id = ?").get(id) as ConferenceRow | undefined;
    return row === undefined ? undefined : conferenceOf(row);
  }

  /** Conferences newest first, of one owner or of all, in one state or any. */
  conferences(filter: { owner?: string; state?: ConferenceState; limit: number }): ConferenceRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM conferences WHERE (@owner IS NULL OR owner = @owner) AND (@state IS NULL OR state = @state)
         ORDER BY created_at DESC, id DESC LIMIT @limit`,
      )
      .all({ owner: filter.owner ?? null, state: filter.state ?? null, limit: filter.limit }) as ConferenceRow[];
    return rows.map(conferenceOf);
  }

  countByState(): Record<ConferenceState, number> {
    const counts = Object.fromEntries(CONFERENCE_STATES.map((state) => [state, 0])) as Record<ConferenceState, number>;
    for (const row of this.db.prepare("SELECT state, count(*) AS n FROM conferences GROUP BY state").all() as { state: ConferenceState; n: number }[]) {
      counts[row.state] = row.n;
    }
    return counts;
  }

  operation(id: number): OperationRecord | undefined {
    const row = this.db.prepare("SELECT * FROM operations WHERE id = ?").get(id) as OperationRow | undefined;
    return row === undefined ? undefined : operationOf(row);
  }

  operations(conferenceId: string): OperationRecord[] {
    return (this.db.prepare("SELECT * FROM operations WHERE conference_id = ? ORDER BY id").all(conferenceId) as OperationRow[]).map(operationOf);
  }

  /** Operations a previous process left queued or running, oldest first. */
  unfinishedOperations(): OperationRecord[] {
    return (this.db.prepare("SELECT * FROM operations WHERE state IN ('queued', 'running') ORDER BY id").all() as OperationRow[]).map(operationOf);
  }

  /** An operation begins (again, after a retry or a restart): a conference's `up` makes it `deploying`. */
  startOperation(id: number): void {
    this.transaction(() => {
      const operation = this.operation(id)!;
      this.db.prepare("UPDATE operations SET state = 'running', attempts = attempts + 1, started_at = ? WHERE id = ?").run(this.stamp(), id);
      const conference = this.conference(operation.conferenceId)!;
      if (operation.kind === "up" && (conference.state === "placed" || conference.state === "deploying")) {
        this.db.prepare("UPDATE conferences SET progress_done = 0, progress_total = 0 WHERE id = ?").run(conference.id);
        this.setState(conference.id, "deploying");
        this.appendEvent(conference.id, "deploying", { done: 0, total: 0 });
      }
    });
  }

  /** Resource steps done of those planned; a deployment's progress is also an event. */
  progress(operationId: number, done: number, total: number): void {
    this.transaction(() => {
      const operation = this.operation(operationId)!;
      this.db.prepare("UPDATE conferences SET progress_done = ?, progress_total = ?, updated_at = ? WHERE id = ?").run(done, total, this.stamp(), operation.conferenceId);
      if (operation.kind === "up" && this.conference(operation.conferenceId)!.state === "deploying") {
        this.appendEvent(operation.conferenceId, "deploying", { done, total });
      }
    });
  }

  // Each outcome of an operation is recorded with the conference's next state in one transaction:
  // a crash between the two would leave a conference whose operations are over but whose state is
  // not, which no restart could tell from a live one.

  /** A deployment succeeded: `ready`, unless a stop came meanwhile (it stays `stopping`, its destroy queued). */
  completeUp(operationId: number, outputs: Record<string, unknown>, url: string): void {
    this.transaction(() => {
      this.closeOperation(operationId, "succeeded", { outputs });
      const { conferenceId } = this.operation(operationId)!;
      if (this.conference(conferenceId)!.state === "deploying") {
        this.setState(conferenceId, "ready", { url });
        this.appendEvent(conferenceId, "ready", { url });
      }
    });
  }

  /** A deployment failed: its cleanup (a destroy) is queued before the failure is told. */
  failUp(operationId: number, reason: string): OperationRecord {
    return this.transaction(() => {
      this.closeOperation(operationId, "failed", { error: reason });
      const operation = this.operation(operationId)!;
      return this.insertOperation(operation.conferenceId, operation.stack, "destroy");
    });
  }

  /**
   * A destroy ended. After a stop the conference is `stopped` (or `failed`, naming why the destroy
   * did not succeed); after a failed create it is `failed` with the create's reason.
   */
  completeDestroy(operationId: number, outcome: { error?: string }): void {
    this.transaction(() => {
      this.closeOperation(operationId, outcome.error === undefined ? "succeeded" : "failed", outcome.error === undefined ? {} : { error: outcome.error });
      const { conferenceId } = this.operation(operationId)!;
      const conference = this.conference(conferenceId)!;
      if (conference.state === "stopping") {
        if (outcome.error === undefined) {
          this.setState(conferenceId, "stopped");
          this.appendEvent(conferenceId, "stopped");
        } else {
          this.fail(conferenceId, `stopping failed: ${outcome.error}`);
        }
        return;
      }
      const create = this.operations(conferenceId).findLast((candidate) => candidate.kind === "up" && candidate.state === "failed");
      const reason = create?.error ?? "the deployment was interrupted";
      this.fail(conferenceId, outcome.error === undefined ? reason : `${reason}; cleaning up failed too: ${outcome.error}`);
    });
  }

  /** An operation that will not run (cancelled by a stop), or that a stop makes moot. */
  cancelOperation(operationId: number): void {
    this.transaction(() => this.closeOperation(operationId, "cancelled", {}));
  }

  private closeOperation(id: number, state: Exclude<OperationState, "queued" | "running">, result: { error?: string; outputs?: Record<string, unknown> }): void {
    this.db
      .prepare("UPDATE operations SET state = ?, ended_at = ?, error = ?, outputs = ? WHERE id = ?")
      .run(state, this.stamp(), result.error ?? null, result.outputs === undefined ? null : JSON.stringify(result.outputs), id);
  }

  private fail(conferenceId: string, reason: string): void {
    this.setState(conferenceId, "failed", { error: reason });
    this.appendEvent(conferenceId, "failed", { reason });
  }

  /**
   * The organizer stops the conference: `stopping` and a queued `destroy`, or nothing when it is
   * stopping or over already (a second stop is the first one). A conference whose stack outlived
   * a failed destroy is not over: stopping it again runs the destroy again.
   */
  requestStop(id: string): { conference: ConferenceRecord; operation?: OperationRecord } {
    return this.transaction(() => {
      const conference = this.conference(id)!;
      const stackLeft = conference.state === "failed" && this.db.prepare(`SELECT 1 FROM conferences c WHERE id = ? AND ${LAST_DESTROY_FAILED}`).get(id) !== undefined;
      if (conference.state === "stopping" || (TERMINAL_STATES.includes(conference.state) && !stackLeft)) {
        return { conference };
      }
      this.setState(id, "stopping");
      this.appendEvent(id, "stopping");
      const operation = this.insertOperation(id, stackOfOperations(this.operations(id)), "destroy");
      this.appendEvent(id, "queued", { operation: operation.id, kind: "destroy" });
      return { conference: this.conference(id)!, operation };
    });
  }

  /** A conference's events after `afterId` (0 for all), oldest first: what a reconnecting stream missed. */
  eventsAfter(conferenceId: string, afterId: number): EventRecord[] {
    return (this.db.prepare("SELECT * FROM events WHERE conference_id = ? AND id > ? ORDER BY id").all(conferenceId, afterId) as EventRow[]).map(eventOf);
  }
}

/**
 * A conference (aliased `c`) whose last operation is a destroy that failed: its stack and resources
 * still exist, so it still holds its cluster's capacity and may be stopped again.
 */
const LAST_DESTROY_FAILED = `(SELECT kind || ':' || state FROM operations WHERE conference_id = c.id ORDER BY id DESC LIMIT 1) = 'destroy:failed'`;

/** Every operation of a conference runs on its one stack. */
function stackOfOperations(operations: OperationRecord[]): string {
  return operations[0]!.stack;
}

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
    conferenceId: row.conference_id,
    stack: row.stack,
    kind: row.kind,
    state: row.state,
    attempts: row.attempts,
    createdAt: row.created_at,
    ...(row.started_at === null ? {} : { startedAt: row.started_at }),
    ...(row.ended_at === null ? {} : { endedAt: row.ended_at }),
    ...(row.error === null ? {} : { error: row.error }),
    ...(row.outputs === null ? {} : { outputs: JSON.parse(row.outputs) as Record<string, unknown> }),
  };
}

function eventOf(row: EventRow): EventRecord {
  return { id: row.id, conferenceId: row.conference_id, type: row.type, data: JSON.parse(row.data) as Record<string, unknown>, at: row.at };
}
