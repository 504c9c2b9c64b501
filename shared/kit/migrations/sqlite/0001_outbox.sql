-- Transactional outbox (see the PostgreSQL migration). SQLite has a single writer, so
-- ids are handed out in commit order and txid is always 0.
CREATE TABLE outbox (
    txid INTEGER NOT NULL DEFAULT 0,
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BLOB NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    aggregate_reference TEXT NOT NULL,
    trace_context TEXT NOT NULL,
    payload BLOB NOT NULL
);

CREATE TABLE consumer_cursors (
    consumer TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE consumed_events (
    consumer TEXT NOT NULL,
    event_id BLOB NOT NULL,
    consumed_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE audit_log (
    id BLOB PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    roles TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, at);
