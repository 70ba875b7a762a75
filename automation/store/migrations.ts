/**
 * The store's schema, one migration per version (SQLite's `user_version` says which ran). Append,
 * never edit: a database that ran a migration keeps what it did.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE conferences (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('placed', 'deploying', 'ready', 'failed', 'stopping', 'stopped')),
    cluster TEXT NOT NULL,
    decision TEXT NOT NULL,
    spec TEXT NOT NULL,
    url TEXT,
    error TEXT,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    request_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (owner, idempotency_key)
  );
  CREATE INDEX conferences_by_state ON conferences (state);
  CREATE INDEX conferences_by_owner ON conferences (owner, created_at);

  CREATE TABLE operations (
    id INTEGER PRIMARY KEY,
    conference_id TEXT NOT NULL REFERENCES conferences (id),
    stack TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('up', 'destroy', 'refresh')),
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    error TEXT,
    outputs TEXT
  );
  CREATE INDEX operations_by_conference ON operations (conference_id);
  CREATE INDEX operations_unfinished ON operations (state) WHERE state IN ('queued', 'running');

  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conference_id TEXT NOT NULL REFERENCES conferences (id),
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at TEXT NOT NULL
  );
  CREATE INDEX events_by_conference ON events (conference_id, id);
  `,
  // Operations and events belong to a stack (a conference's, a PoP's), not to a conference: a
  // conference's stack is conf-<id> (domain/contracts/conference.ts conferenceName), which is how
  // the rows are carried over. Ids are kept, so an event stream's Last-Event-ID still means the
  // same event. `changes`: what an operation did to each resource, as the engine reported it.
  `
  CREATE TABLE stack_operations (
    id INTEGER PRIMARY KEY,
    stack TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('up', 'destroy', 'refresh')),
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    error TEXT,
    outputs TEXT,
    changes TEXT
  );
  INSERT INTO stack_operations (id, stack, kind, state, attempts, created_at, started_at, ended_at, error, outputs)
    SELECT id, stack, kind, state, attempts, created_at, started_at, ended_at, error, outputs FROM operations;
  DROP TABLE operations;
  ALTER TABLE stack_operations RENAME TO operations;
  CREATE INDEX operations_by_stack ON operations (stack, id);
  CREATE INDEX operations_unfinished ON operations (state) WHERE state IN ('queued', 'running');

  CREATE TABLE stack_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stack TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at TEXT NOT NULL
  );
  INSERT INTO stack_events (id, stack, type, data, at) SELECT id, 'conf-' || conference_id, type, data, at FROM events;
  -- AUTOINCREMENT's high-water mark, which pruned events may have left above the largest id kept:
  -- an id once sent is never given to another event.
  INSERT INTO sqlite_sequence (name, seq) SELECT 'stack_events', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'stack_events');
  UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)) WHERE name = 'stack_events';
  DROP TABLE events;
  ALTER TABLE stack_events RENAME TO events;
  CREATE INDEX events_by_stack ON events (stack, id);
  `,
  // The PoP loop's records: the reports the instance managers sent, one per host and period (the
  // key makes a resend a duplicate, never a second count), and the loop's decisions, each with its
  // inputs, outcome and timings, and the `up` that applied it.
  `
  CREATE TABLE pop_reports (
    pop TEXT NOT NULL,
    host TEXT NOT NULL,
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    digest TEXT NOT NULL,
    report TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (pop, host, period_start)
  );
  CREATE INDEX pop_reports_by_end ON pop_reports (pop, period_end);

  CREATE TABLE pop_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pop TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    period_start TEXT NOT NULL,
    strategy TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('unchanged', 'held', 'applying', 'applied', 'failed')),
    inputs TEXT NOT NULL,
    layout TEXT NOT NULL,
    timings TEXT NOT NULL,
    reason TEXT,
    operation_id INTEGER
  );
  CREATE INDEX pop_decisions_by_pop ON pop_decisions (pop, id);
  `,
  // A decision whose \`up\` a newer decision overtook before it began (the \`up\` applies the newest):
  // "superseded". SQLite cannot change a CHECK in place, so the table is rebuilt with its rows and ids.
  `
  CREATE TABLE pop_decisions_4 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pop TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    period_start TEXT NOT NULL,
    strategy TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('unchanged', 'held', 'applying', 'applied', 'failed', 'superseded')),
    inputs TEXT NOT NULL,
    layout TEXT NOT NULL,
    timings TEXT NOT NULL,
    reason TEXT,
    operation_id INTEGER
  );
  INSERT INTO pop_decisions_4 SELECT * FROM pop_decisions;
  INSERT INTO sqlite_sequence (name, seq) SELECT 'pop_decisions_4', coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'pop_decisions'), 0);
  DROP TABLE pop_decisions;
  ALTER TABLE pop_decisions_4 RENAME TO pop_decisions;
  CREATE INDEX pop_decisions_by_pop ON pop_decisions (pop, id);
  CREATE INDEX pop_decisions_by_operation ON pop_decisions (operation_id);
  `,
];
