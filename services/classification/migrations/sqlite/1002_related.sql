-- See the PostgreSQL migration.
ALTER TABLE triage_entries ADD COLUMN possible_incident INTEGER NOT NULL DEFAULT 0;

CREATE TABLE triage_match_keys (
    report_id BLOB NOT NULL REFERENCES triage_entries (report_id),
    match_key TEXT NOT NULL,
    PRIMARY KEY (report_id, match_key)
);
CREATE INDEX triage_match_keys_by_key ON triage_match_keys (match_key, report_id);
CREATE INDEX triage_by_category_time ON triage_entries (category, submitted_at);
CREATE INDEX incidents_by_category_time ON incidents (category, declared_at);

CREATE INDEX triage_monitored ON triage_entries (submitted_at, report_id) WHERE state = 2;
CREATE INDEX triage_dismissed ON triage_entries (submitted_at, report_id) WHERE state = 3;
CREATE INDEX triage_in_incident ON triage_entries (submitted_at, report_id) WHERE state = 4;
