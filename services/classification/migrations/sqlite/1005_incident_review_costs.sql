-- See the PostgreSQL migration.
ALTER TABLE incidents ADD COLUMN breach TEXT;
ALTER TABLE incidents ADD COLUMN review TEXT;
ALTER TABLE incidents ADD COLUMN closed_at TEXT;
ALTER TABLE incidents ADD COLUMN impact_sequence INTEGER NOT NULL DEFAULT 1;

CREATE TABLE incident_impacts (
    incident_id BLOB NOT NULL REFERENCES incidents (id),
    sequence INTEGER NOT NULL,
    impact TEXT NOT NULL,
    overall_level INTEGER NOT NULL,
    reason TEXT NOT NULL,
    assessed_by TEXT NOT NULL,
    assessed_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, sequence)
);
INSERT INTO incident_impacts (incident_id, sequence, impact, overall_level, reason,
    assessed_by, assessed_at)
SELECT id, 1, impact, overall_level, '', declared_by, declared_at FROM incidents;

CREATE TABLE incident_costs (
    id BLOB PRIMARY KEY,
    incident_id BLOB NOT NULL REFERENCES incidents (id),
    category TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    minor_digits INTEGER NOT NULL,
    description TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX incident_costs_by_incident ON incident_costs (incident_id, id);

CREATE TRIGGER incident_impacts_no_update BEFORE UPDATE ON incident_impacts
BEGIN
    SELECT RAISE(ABORT, 'the impact history is append-only: UPDATE refused');
END;
CREATE TRIGGER incident_impacts_no_delete BEFORE DELETE ON incident_impacts
BEGIN
    SELECT RAISE(ABORT, 'the impact history is append-only: DELETE refused');
END;
CREATE TRIGGER incident_costs_no_update BEFORE UPDATE ON incident_costs
BEGIN
    SELECT RAISE(ABORT, 'the costs are append-only: UPDATE refused');
END;
CREATE TRIGGER incident_costs_no_delete BEFORE DELETE ON incident_costs
BEGIN
    SELECT RAISE(ABORT, 'the costs are append-only: DELETE refused');
END;
