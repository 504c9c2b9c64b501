-- Reports as they stand now (SQLite: times are fixed-width UTC text, see DbTime).
-- `original` is the submission as received and is never updated; amendments are
-- appended to report_revisions.


CREATE TABLE reports (
    id BLOB PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    reference TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    status INTEGER NOT NULL,
    category TEXT NOT NULL,
    medium INTEGER NOT NULL,
    details TEXT NOT NULL,
    original TEXT NOT NULL,
    contact TEXT,
    anonymous INTEGER NOT NULL,
    submitted_by TEXT,
    submitted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision INTEGER NOT NULL,
    senior_notice INTEGER NOT NULL,
    idempotency_hash BLOB UNIQUE,
    request_hash BLOB,
    receipt_hash BLOB UNIQUE
);
CREATE INDEX reports_by_submission ON reports (submitted_at DESC, id DESC);
CREATE INDEX reports_by_submitter ON reports (submitted_by, submitted_at DESC) WHERE submitted_by IS NOT NULL;

CREATE TABLE report_revisions (
    report_id BLOB NOT NULL REFERENCES reports (id),
    number INTEGER NOT NULL,
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (report_id, number)
);

CREATE TABLE follow_ups (
    id BLOB PRIMARY KEY,
    report_id BLOB NOT NULL REFERENCES reports (id),
    added_at TEXT NOT NULL,
    source INTEGER NOT NULL,
    added_by TEXT,
    text TEXT NOT NULL
);
CREATE INDEX follow_ups_by_report ON follow_ups (report_id, added_at);

CREATE TABLE provider_reports (
    id BLOB PRIMARY KEY,
    report_id BLOB NOT NULL REFERENCES reports (id),
    provider TEXT NOT NULL,
    provider_reference TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    first_response_at TEXT,
    verdict INTEGER NOT NULL,
    verdict_notes TEXT NOT NULL,
    verdict_by TEXT,
    verdict_at TEXT
);
CREATE INDEX provider_reports_by_report ON provider_reports (report_id);
CREATE INDEX provider_reports_awaiting ON provider_reports (reported_at, id) WHERE first_response_at IS NULL;

CREATE TABLE provider_responses (
    id BLOB PRIMARY KEY,
    provider_report_id BLOB NOT NULL REFERENCES provider_reports (id),
    responded_at TEXT NOT NULL,
    summary TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX provider_responses_by_report ON provider_responses (provider_report_id, responded_at);
