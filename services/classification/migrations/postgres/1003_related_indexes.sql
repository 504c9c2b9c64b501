-- What the suggestions read by, besides a key: a category in a time range, among the
-- reports not dismissed (the query names the constant `state <> 3`; PostgreSQL may also
-- use the index for the queue's category lists, since `state = 1` implies it, SQLite
-- never), and incidents of a category by date. Then the assessed reports by state,
-- oldest first (ListTriageQueue with filter.state; other filters with a state other than
-- waiting are read from these by time). Built in the migration's transaction: writes to
-- triage_entries wait while they build (CONCURRENTLY cannot run in one); at most 5 s
-- are spent waiting for the lock itself.
SET LOCAL lock_timeout = '5s';
CREATE INDEX triage_open_by_category_time ON triage_entries (category, submitted_at, report_id)
    WHERE state <> 3;
CREATE INDEX incidents_by_category_time ON incidents (category, declared_at);
CREATE INDEX triage_monitored ON triage_entries (submitted_at, report_id) WHERE state = 2;
CREATE INDEX triage_dismissed ON triage_entries (submitted_at, report_id) WHERE state = 3;
CREATE INDEX triage_in_incident ON triage_entries (submitted_at, report_id) WHERE state = 4;
