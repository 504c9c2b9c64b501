-- Reports as they stand now. `original` is the submission as received and is never
-- updated; amendments are appended to report_revisions.
CREATE SEQUENCE report_number_seq;

CREATE TABLE reports (
    id UUID PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,
    reference TEXT NOT NULL UNIQUE,
    kind SMALLINT NOT NULL,
    status SMALLINT NOT NULL,
    category TEXT NOT NULL,
    medium SMALLINT NOT NULL,
    details TEXT NOT NULL,
    original TEXT NOT NULL,
    contact TEXT,
    anonymous BOOLEAN NOT NULL,
    submitted_by TEXT,
    submitted_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    revision INTEGER NOT NULL,
    senior_notice BOOLEAN NOT NULL,
    idempotency_hash BYTEA UNIQUE,
    request_hash BYTEA,
    receipt_hash BYTEA UNIQUE
);
CREATE INDEX reports_by_submission ON reports (submitted_at DESC, id DESC);
CREATE INDEX reports_by_submitter ON reports (submitted_by, submitted_at DESC) WHERE submitted_by IS NOT NULL;

CREATE TABLE report_revisions (
    report_id UUID NOT NULL REFERENCES reports (id),
    number INTEGER NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    changed_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (report_id, number)
);

CREATE TABLE follow_ups (
    id UUID PRIMARY KEY,
    report_id UUID NOT NULL REFERENCES reports (id),
    added_at TIMESTAMPTZ NOT NULL,
    source SMALLINT NOT NULL,
    added_by TEXT,
    text TEXT NOT NULL
);
CREATE INDEX follow_ups_by_report ON follow_ups (report_id, added_at);

CREATE TABLE provider_reports (
    id UUID PRIMARY KEY,
    report_id UUID NOT NULL REFERENCES reports (id),
    provider TEXT NOT NULL,
    provider_reference TEXT NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    first_response_at TIMESTAMPTZ,
    verdict SMALLINT NOT NULL,
    verdict_notes TEXT NOT NULL,
    verdict_by TEXT,
    verdict_at TIMESTAMPTZ
);
CREATE INDEX provider_reports_by_report ON provider_reports (report_id);
CREATE INDEX provider_reports_awaiting ON provider_reports (reported_at, id) WHERE first_response_at IS NULL;

CREATE TABLE provider_responses (
    id UUID PRIMARY KEY,
    provider_report_id UUID NOT NULL REFERENCES provider_reports (id),
    responded_at TIMESTAMPTZ NOT NULL,
    summary TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX provider_responses_by_report ON provider_responses (provider_report_id, responded_at);
