-- A series of events (policy 6, 14.2): intake's match keys (keyed digests of inventory
-- numbers, "i:…", and locations, "l:…": never the words) per report, with the report's
-- submission time so that a key is read only within the window, and the flag raised
-- when enough related reports arrive. The indexes are in 1003: a new column takes a
-- short exclusive lock, held to the end of its transaction, which must not also build
-- indexes on a large table.
SET LOCAL lock_timeout = '5s';
ALTER TABLE triage_entries ADD COLUMN possible_incident BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE triage_match_keys (
    report_id UUID NOT NULL REFERENCES triage_entries (report_id),
    match_key TEXT NOT NULL,
    submitted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (report_id, match_key)
);
CREATE INDEX triage_match_keys_by_key ON triage_match_keys (match_key, submitted_at, report_id);
