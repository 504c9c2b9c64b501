-- The rest of the register: the personal-data breach and its decision, the
-- post-incident review (both JSON, read and written with the incident), when it closed,
-- the history of its impact, and its costs.
SET LOCAL lock_timeout = '5s';
ALTER TABLE incidents
    ADD COLUMN breach TEXT,
    ADD COLUMN review TEXT,
    ADD COLUMN closed_at TIMESTAMPTZ,
    ADD COLUMN impact_sequence INTEGER NOT NULL DEFAULT 1;

-- Every assessment of an incident's impact; 1 is the one it was declared with.
CREATE TABLE incident_impacts (
    incident_id UUID NOT NULL REFERENCES incidents (id),
    sequence INTEGER NOT NULL,
    impact TEXT NOT NULL,
    overall_level SMALLINT NOT NULL,
    reason TEXT NOT NULL,
    assessed_by TEXT NOT NULL,
    assessed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, sequence)
);
INSERT INTO incident_impacts (incident_id, sequence, impact, overall_level, reason,
    assessed_by, assessed_at)
SELECT id, 1, impact, overall_level, '', declared_by, declared_at FROM incidents;

-- Costs in minor units (pence) with their currency; corrections are negative items.
CREATE TABLE incident_costs (
    id UUID PRIMARY KEY,
    incident_id UUID NOT NULL REFERENCES incidents (id),
    category TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    minor_digits SMALLINT NOT NULL,
    description TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX incident_costs_by_incident ON incident_costs (incident_id, id);

-- Both are history: the database refuses to change or remove a row.
CREATE FUNCTION history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER incident_impacts_append_only BEFORE UPDATE OR DELETE ON incident_impacts
    FOR EACH ROW EXECUTE FUNCTION history_append_only();
CREATE TRIGGER incident_impacts_no_truncate BEFORE TRUNCATE ON incident_impacts
    FOR EACH STATEMENT EXECUTE FUNCTION history_append_only();
CREATE TRIGGER incident_costs_append_only BEFORE UPDATE OR DELETE ON incident_costs
    FOR EACH ROW EXECUTE FUNCTION history_append_only();
CREATE TRIGGER incident_costs_no_truncate BEFORE TRUNCATE ON incident_costs
    FOR EACH STATEMENT EXECUTE FUNCTION history_append_only();
