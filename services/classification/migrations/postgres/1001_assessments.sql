-- Assessments and the first part of the incident register.
--
-- An assessment is appended, never updated: the history of who decided what about a
-- report, and when. `sequence` counts a report's assessments (1, 2, …); the entry keeps
-- the latest in `assessment_sequence`, so that two advisors assessing at once cannot
-- both succeed on the same view. `impact` is the score as it was made (JSON: rows,
-- levels and the descriptors' words, with the matrix's revision), so a later change of
-- the matrix does not rewrite history.
--
-- A new column with a constant default changes no row, but takes a short exclusive
-- lock: give up after 5 s rather than queue every write behind a long read (the start
-- fails, and the next start tries again).
SET LOCAL lock_timeout = '5s';
ALTER TABLE triage_entries ADD COLUMN assessment_sequence INTEGER NOT NULL DEFAULT 0;

CREATE SEQUENCE incident_number_seq;

CREATE TABLE incidents (
    id UUID PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,
    reference TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    category TEXT NOT NULL,
    impact TEXT NOT NULL,
    overall_level SMALLINT NOT NULL,
    state SMALLINT NOT NULL,
    declared_by TEXT NOT NULL,
    declared_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    revision INTEGER NOT NULL
);

CREATE TABLE assessments (
    id UUID PRIMARY KEY,
    report_id UUID NOT NULL REFERENCES triage_entries (report_id),
    sequence INTEGER NOT NULL,
    report_revision INTEGER NOT NULL,
    category TEXT NOT NULL,
    impact TEXT NOT NULL,
    overall_level SMALLINT NOT NULL,
    decision SMALLINT NOT NULL,
    reason TEXT NOT NULL,
    note TEXT NOT NULL,
    incident_id UUID REFERENCES incidents (id),
    assessed_by TEXT NOT NULL,
    assessed_at TIMESTAMPTZ NOT NULL,
    UNIQUE (report_id, sequence)
);

-- The reports an incident holds now, from each report's latest assessment (the history
-- is in assessments).
CREATE TABLE incident_reports (
    incident_id UUID NOT NULL REFERENCES incidents (id),
    report_id UUID NOT NULL REFERENCES triage_entries (report_id),
    assessment_id UUID NOT NULL REFERENCES assessments (id),
    PRIMARY KEY (report_id)
);
CREATE INDEX incident_reports_by_incident ON incident_reports (incident_id, report_id);
CREATE INDEX assessments_by_incident ON assessments (incident_id) WHERE incident_id IS NOT NULL;
