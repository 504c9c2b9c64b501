-- See the PostgreSQL migration.
ALTER TABLE incidents ADD COLUMN officer TEXT;
ALTER TABLE incidents ADD COLUMN service_affecting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN business_services TEXT NOT NULL DEFAULT '[]';
ALTER TABLE incidents ADD COLUMN personal_data INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN paper_records INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN evidence_required INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN expected_recovery_at TEXT;
ALTER TABLE incidents ADD COLUMN access_sequence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN action_sequence INTEGER NOT NULL DEFAULT 0;

CREATE TABLE incident_access (
    incident_id BLOB NOT NULL REFERENCES incidents (id),
    subject TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, subject)
);
CREATE INDEX incident_access_by_subject ON incident_access (subject, incident_id);

CREATE TABLE incident_actions (
    id BLOB PRIMARY KEY,
    incident_id BLOB NOT NULL REFERENCES incidents (id),
    sequence INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    detail TEXT NOT NULL,
    subject TEXT,
    actor TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (incident_id, sequence)
);
CREATE INDEX incident_actions_by_kind ON incident_actions (incident_id, kind, sequence);

CREATE TRIGGER incident_actions_no_update BEFORE UPDATE ON incident_actions
BEGIN
    SELECT RAISE(ABORT, 'the incident actions log is append-only: UPDATE refused');
END;
CREATE TRIGGER incident_actions_no_delete BEFORE DELETE ON incident_actions
BEGIN
    SELECT RAISE(ABORT, 'the incident actions log is append-only: DELETE refused');
END;

-- ListIncidents: on SQLite every index costs the one writer; the register is written
-- far less than the triage queue, so the time order and the state.
CREATE INDEX incidents_by_time ON incidents (declared_at, id);
CREATE INDEX incidents_by_state_time ON incidents (state, declared_at, id);
