-- See the PostgreSQL migration.
ALTER TABLE incidents ADD COLUMN continuity_title TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN continuity_statement TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN continuity_published INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN ever_affected_services TEXT NOT NULL DEFAULT '[]';
ALTER TABLE incidents ADD COLUMN highest_level INTEGER NOT NULL DEFAULT 1;
UPDATE incidents SET highest_level = MAX(overall_level, COALESCE(
        (SELECT MAX(m.overall_level) FROM incident_impacts m WHERE m.incident_id = incidents.id), 0)),
    continuity_published = service_affecting, ever_affected_services = business_services;
CREATE INDEX incidents_published_time ON incidents (declared_at, id)
    WHERE continuity_published;
