-- An incident keeps the number of reports it holds (see the PostgreSQL migration 1010:
-- counting them for every row of a list was a third of the list's statement). Triggers
-- count every link and unlink, whichever code made it. SQLite has one writer, so the
-- existing links are counted here, in the same transaction.
ALTER TABLE incidents ADD COLUMN report_count INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER incident_reports_linked AFTER INSERT ON incident_reports
BEGIN UPDATE incidents SET report_count = report_count + 1 WHERE id = NEW.incident_id; END;
CREATE TRIGGER incident_reports_unlinked AFTER DELETE ON incident_reports
BEGIN UPDATE incidents SET report_count = report_count - 1 WHERE id = OLD.incident_id; END;
CREATE TRIGGER incident_reports_moved AFTER UPDATE OF incident_id ON incident_reports
BEGIN
    UPDATE incidents SET report_count = report_count - 1 WHERE id = OLD.incident_id;
    UPDATE incidents SET report_count = report_count + 1 WHERE id = NEW.incident_id;
END;
UPDATE incidents SET report_count =
    (SELECT COUNT(*) FROM incident_reports r WHERE r.incident_id = incidents.id);
