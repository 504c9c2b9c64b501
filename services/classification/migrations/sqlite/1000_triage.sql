-- See the PostgreSQL migration (SQLite: ids are 16-byte blobs, times fixed-width UTC
-- text, booleans integers).
CREATE TABLE triage_entries (
    report_id BLOB PRIMARY KEY,
    reference TEXT NOT NULL,
    kind INTEGER NOT NULL,
    category TEXT NOT NULL,
    medium INTEGER NOT NULL,
    personal_information INTEGER NOT NULL,
    malware_suspected INTEGER NOT NULL,
    anonymous INTEGER NOT NULL,
    senior_notice INTEGER NOT NULL,
    occurred_at TEXT,
    submitted_at TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    follow_up_count INTEGER NOT NULL,
    report_revision INTEGER NOT NULL,
    state INTEGER NOT NULL
);

-- No index that starts with kind: given one, SQLite's planner (3.51, with statistics)
-- takes it for `kind = ?` and sorts half the queue rather than walk the queue in time
-- order and stop at a page (measured with tests/load/bench.sh triage-sqlite: p99
-- 128-198 ms by kind on 100,000 entries, 19 ms without). With a category, the category
-- and routing facts index narrows to a few rows to sort, which empty results need most
-- (a weakness in a category of events): 247-547 ms without it.
CREATE INDEX triage_awaiting ON triage_entries (submitted_at, report_id) WHERE state = 1;
CREATE INDEX triage_awaiting_by_category ON triage_entries (category, submitted_at, report_id)
    WHERE state = 1;
CREATE INDEX triage_awaiting_by_category_routing
    ON triage_entries (category, kind, medium, personal_information, submitted_at, report_id)
    WHERE state = 1;

CREATE TABLE triage_follow_ups (
    report_id BLOB NOT NULL REFERENCES triage_entries (report_id),
    follow_up_id BLOB NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (report_id, follow_up_id)
);
