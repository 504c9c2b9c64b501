-- Feed epochs. Outbox rows are ordered by (epoch, txid, id). The epoch changes only when
-- the outbox holds transaction ids at or beyond the cluster's next one (the schema was
-- restored into, or moved to, another cluster), so that new events still sort after old
-- ones. The column default is set to the current epoch when it changes (see outbox.rs).
ALTER TABLE outbox ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
ALTER TABLE outbox ADD PRIMARY KEY (epoch, txid, id);

CREATE TABLE feed_epoch (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch BIGINT NOT NULL
);
INSERT INTO feed_epoch (epoch) VALUES (0);

-- The replica whose session may move a consumer's cursor. Every applied event updates the
-- cursor only where the holder is still this session: a replica that lost its lease is
-- fenced off at its next event.
ALTER TABLE consumer_cursors ADD COLUMN holder TEXT;

-- Failed attempts at applying an event, kept across restarts.
CREATE TABLE consumer_failures (
    consumer TEXT NOT NULL,
    event_id UUID NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Events a consumer could not apply after its configured attempts (dead letters), with
-- the whole envelope, so that an operator can replay them.
CREATE TABLE parked_events (
    consumer TEXT NOT NULL,
    event_id UUID NOT NULL,
    feed_cursor TEXT NOT NULL,
    event_type TEXT NOT NULL,
    aggregate_reference TEXT NOT NULL,
    envelope BYTEA NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX parked_events_by_time ON parked_events (consumer, parked_at, event_id);

-- Idempotency keys of creates and non-idempotent verbs: the key (hashed with its caller
-- and method), a fingerprint of the validated request, and the response to replay.
CREATE TABLE idempotency_keys (
    key_hash BYTEA PRIMARY KEY,
    method TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    response BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Keys the service keeps for itself (the page-token key), shared by its replicas.
CREATE TABLE service_keys (
    name TEXT PRIMARY KEY,
    key BYTEA NOT NULL
);
