-- See the PostgreSQL migration.
ALTER TABLE triage_entries ADD COLUMN possible_incident INTEGER NOT NULL DEFAULT 0;

CREATE TABLE triage_match_keys (
    report_id BLOB NOT NULL REFERENCES triage_entries (report_id),
    match_key TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    PRIMARY KEY (report_id, match_key)
);
CREATE INDEX triage_match_keys_by_key ON triage_match_keys (match_key, submitted_at, report_id);
