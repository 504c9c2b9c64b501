-- A series of events (policy 6, 14.2): intake's match keys (keyed digests of inventory
-- numbers, "i:…", and locations, "l:…": never the words) per report, the flag raised when
-- enough related reports arrive within the window, and the indexes the suggestions read
-- by: a key, a category in a time range (any state), incidents of a category by date.
SET LOCAL lock_timeout = '5s';
ALTER TABLE triage_entries ADD COLUMN possible_incident BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE triage_match_keys (
    report_id UUID NOT NULL REFERENCES triage_entries (report_id),
    match_key TEXT NOT NULL,
    PRIMARY KEY (report_id, match_key)
);
CREATE INDEX triage_match_keys_by_key ON triage_match_keys (match_key, report_id);
CREATE INDEX triage_by_category_time ON triage_entries (category, submitted_at);
CREATE INDEX incidents_by_category_time ON incidents (category, declared_at);

-- The assessed reports, by state, oldest first (ListTriageQueue with filter.state).
CREATE INDEX triage_monitored ON triage_entries (submitted_at, report_id) WHERE state = 2;
CREATE INDEX triage_dismissed ON triage_entries (submitted_at, report_id) WHERE state = 3;
CREATE INDEX triage_in_incident ON triage_entries (submitted_at, report_id) WHERE state = 4;
