-- Transactional outbox: a service appends its domain events here in the same transaction
-- as the write that caused them. Rows are read in (txid, id) order, and only once every
-- transaction with a smaller txid has finished, so an event that commits late is never
-- skipped by a reader that has moved past it (see outbox.rs).
CREATE TABLE outbox (
    txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    aggregate_id TEXT NOT NULL,
    aggregate_reference TEXT NOT NULL,
    trace_context TEXT NOT NULL,
    payload BYTEA NOT NULL,
    PRIMARY KEY (txid, id)
);

-- Where each consumer of another service's feed has got to; updated in the same
-- transaction as the effect of the event.
CREATE TABLE consumer_cursors (
    consumer TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Events already applied, so a replayed event has no second effect.
CREATE TABLE consumed_events (
    consumer TEXT NOT NULL,
    event_id UUID NOT NULL,
    consumed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Who read or changed personal data or evidence, and when.
CREATE TABLE audit_log (
    id UUID PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    roles TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, at);
