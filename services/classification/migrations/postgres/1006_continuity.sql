-- The public business-continuity feed: what is said to business continuity about an
-- incident (its statement), whether it has ever been service affecting (then every
-- change of its public state is a notice), the services it has ever affected and the
-- highest level it has reached (what subscribers' filters match).
SET LOCAL lock_timeout = '5s';
ALTER TABLE incidents
    ADD COLUMN continuity_title TEXT NOT NULL DEFAULT '',
    ADD COLUMN continuity_statement TEXT NOT NULL DEFAULT '',
    ADD COLUMN continuity_published BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN ever_affected_services TEXT NOT NULL DEFAULT '[]',
    ADD COLUMN highest_level SMALLINT NOT NULL DEFAULT 1;
-- The highest level reached so far: the impact history's, and the current one.
UPDATE incidents i SET highest_level = GREATEST(i.overall_level,
        (SELECT MAX(m.overall_level) FROM incident_impacts m WHERE m.incident_id = i.id)),
    continuity_published = service_affecting, ever_affected_services = business_services;
-- The snapshot (ListIncidentNotices): published incidents, newest first.
CREATE INDEX incidents_published_time ON incidents (declared_at, id)
    WHERE continuity_published;
