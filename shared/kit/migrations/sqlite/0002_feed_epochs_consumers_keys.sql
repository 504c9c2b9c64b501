-- See the PostgreSQL migration. SQLite orders the outbox by id alone (one writer), so its
-- epoch stays 0; the column keeps cursors the same shape on both backends.
ALTER TABLE outbox ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;

ALTER TABLE consumer_cursors ADD COLUMN holder TEXT;

CREATE TABLE consumer_failures (
    consumer TEXT NOT NULL,
    event_id BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE parked_events (
    consumer TEXT NOT NULL,
    event_id BLOB NOT NULL,
    feed_cursor TEXT NOT NULL,
    event_type TEXT NOT NULL,
    aggregate_reference TEXT NOT NULL,
    envelope BLOB NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX parked_events_by_time ON parked_events (consumer, parked_at, event_id);

CREATE TABLE idempotency_keys (
    key_hash BLOB PRIMARY KEY,
    method TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    response BLOB NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE service_keys (
    name TEXT PRIMARY KEY,
    key BLOB NOT NULL
);
