-- See the PostgreSQL migration. Incident numbers: the next after the highest (SQLite has
-- one writer).
ALTER TABLE triage_entries ADD COLUMN assessment_sequence INTEGER NOT NULL DEFAULT 0;

CREATE TABLE incidents (
    id BLOB PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    reference TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    category TEXT NOT NULL,
    impact TEXT NOT NULL,
    overall_level INTEGER NOT NULL,
    state INTEGER NOT NULL,
    declared_by TEXT NOT NULL,
    declared_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision INTEGER NOT NULL
);

CREATE TABLE assessments (
    id BLOB PRIMARY KEY,
    report_id BLOB NOT NULL REFERENCES triage_entries (report_id),
    sequence INTEGER NOT NULL,
    report_revision INTEGER NOT NULL,
    category TEXT NOT NULL,
    impact TEXT NOT NULL,
    overall_level INTEGER NOT NULL,
    decision INTEGER NOT NULL,
    reason TEXT NOT NULL,
    note TEXT NOT NULL,
    incident_id BLOB REFERENCES incidents (id),
    assessed_by TEXT NOT NULL,
    assessed_at TEXT NOT NULL,
    UNIQUE (report_id, sequence)
);

CREATE TABLE incident_reports (
    incident_id BLOB NOT NULL REFERENCES incidents (id),
    report_id BLOB NOT NULL REFERENCES triage_entries (report_id),
    assessment_id BLOB NOT NULL REFERENCES assessments (id),
    PRIMARY KEY (report_id)
);
CREATE INDEX incident_reports_by_incident ON incident_reports (incident_id, report_id);
CREATE INDEX assessments_by_incident ON assessments (incident_id) WHERE incident_id IS NOT NULL;
