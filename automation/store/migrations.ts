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
];
