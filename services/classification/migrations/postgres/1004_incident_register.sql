-- The incident register: what an incident involves (its flags), who is responsible for
-- it, who may see it (the access list, 14.2.2), and its actions log.
--
-- New columns with constant defaults change no row, but take a short exclusive lock:
-- give up after 5 s rather than queue every write behind a long read.
SET LOCAL lock_timeout = '5s';
ALTER TABLE incidents
    ADD COLUMN officer TEXT,
    ADD COLUMN service_affecting BOOLEAN NOT NULL DEFAULT false,
    -- JSON array of business service codes.
    ADD COLUMN business_services TEXT NOT NULL DEFAULT '[]',
    ADD COLUMN personal_data BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN paper_records BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN evidence_required BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN expected_recovery_at TIMESTAMPTZ,
    -- Counts the access list's changes (IncidentAccessGranted/Revoked.access_sequence).
    ADD COLUMN access_sequence INTEGER NOT NULL DEFAULT 0,
    -- The sequence of the latest entry of the actions log.
    ADD COLUMN action_sequence INTEGER NOT NULL DEFAULT 0;

-- Who, besides security advisors and services, may see an incident. The responsible
-- officer is always on it.
CREATE TABLE incident_access (
    incident_id UUID NOT NULL REFERENCES incidents (id),
    subject TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, subject)
);
-- The incidents a person may see (ListIncidents for anyone but advisors).
CREATE INDEX incident_access_by_subject ON incident_access (subject, incident_id);

-- The actions log, append-only: the database refuses to change or remove an entry,
-- whoever asks.
CREATE TABLE incident_actions (
    id UUID PRIMARY KEY,
    incident_id UUID NOT NULL REFERENCES incidents (id),
    sequence INTEGER NOT NULL,
    kind SMALLINT NOT NULL,
    detail TEXT NOT NULL,
    subject TEXT,
    actor TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    UNIQUE (incident_id, sequence)
);
CREATE INDEX incident_actions_by_kind ON incident_actions (incident_id, kind, sequence);

CREATE FUNCTION incident_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the incident actions log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER incident_actions_append_only BEFORE UPDATE OR DELETE ON incident_actions
    FOR EACH ROW EXECUTE FUNCTION incident_actions_append_only();
CREATE TRIGGER incident_actions_no_truncate BEFORE TRUNCATE ON incident_actions
    FOR EACH STATEMENT EXECUTE FUNCTION incident_actions_append_only();

-- ListIncidents, newest first, for the filters it offers.
CREATE INDEX incidents_by_time ON incidents (declared_at, id);
CREATE INDEX incidents_by_state_time ON incidents (state, declared_at, id);
CREATE INDEX incidents_by_level_time ON incidents (overall_level, declared_at, id);
CREATE INDEX incidents_by_officer_time ON incidents (officer, declared_at, id)
    WHERE officer IS NOT NULL;
CREATE INDEX incidents_service_affecting_time ON incidents (declared_at, id)
    WHERE service_affecting;
CREATE INDEX incidents_personal_data_time ON incidents (declared_at, id)
    WHERE personal_data;
