-- How many reports an incident holds, kept on the incident and changed in the transaction
-- that links or moves a report (see the PostgreSQL migration of the same number).
ALTER TABLE incidents ADD COLUMN report_count INTEGER NOT NULL DEFAULT 0;
UPDATE incidents SET report_count =
    (SELECT COUNT(*) FROM incident_reports r WHERE r.incident_id = incidents.id);
