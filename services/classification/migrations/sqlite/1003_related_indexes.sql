-- See the PostgreSQL migration. SQLite uses a partial index only where the statement
-- names its condition, so `state <> 3` serves the suggestions and never the queue.
CREATE INDEX triage_open_by_category_time ON triage_entries (category, submitted_at, report_id)
    WHERE state <> 3;
CREATE INDEX incidents_by_category_time ON incidents (category, declared_at);
CREATE INDEX triage_monitored ON triage_entries (submitted_at, report_id) WHERE state = 2;
CREATE INDEX triage_dismissed ON triage_entries (submitted_at, report_id) WHERE state = 3;
CREATE INDEX triage_in_incident ON triage_entries (submitted_at, report_id) WHERE state = 4;
