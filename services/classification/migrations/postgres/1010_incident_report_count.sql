-- An incident keeps the number of reports it holds. Counting them for every row of a
-- list was about a third of ListIncidents' statement (PostgreSQL CPU per call, no filter:
-- 0.20 ms counted, 0.13 ms stored; pgbench on one million incidents).
--
-- The database keeps the count, not the service: a trigger on incident_reports counts
-- every link and unlink, whichever code made it, so a replica still on the previous
-- version during a rolling deploy (which links without knowing of the count) cannot make
-- it drift. The existing links are counted by 1011, in a transaction of its own: adding
-- the column takes the register's exclusive lock, which should be held for a moment.
--
-- During a rolling deploy a replica of the previous version still takes the incident it
-- links a report to first, and now, through the trigger, the one the report leaves: two
-- such moves in opposite directions can deadlock. PostgreSQL ends one of them, which its
-- caller sees as ABORTED, retryable with the same idempotency key (nothing was written).
-- This version takes both incidents in id order, so once the deploy is done it cannot.
SET LOCAL lock_timeout = '5s';
ALTER TABLE incidents ADD COLUMN report_count INTEGER NOT NULL DEFAULT 0;

-- The trigger's search path is fixed at creation: the service's schema, then pg_temp (so
-- that a temporary table of the same name in an operator's session is never written
-- instead). A link changed from another session counts in the same register, or fails.
SELECT set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);
CREATE FUNCTION incident_reports_count() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE incidents SET report_count = report_count - 1 WHERE id = OLD.incident_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE incidents SET report_count = report_count + 1 WHERE id = NEW.incident_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER incident_reports_counted AFTER INSERT OR DELETE OR UPDATE OF incident_id
    ON incident_reports FOR EACH ROW EXECUTE FUNCTION incident_reports_count();
CREATE FUNCTION incident_reports_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'incident_reports is counted by incidents.report_count: delete its rows instead of truncating'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;
CREATE TRIGGER incident_reports_counted_no_truncate BEFORE TRUNCATE ON incident_reports
    FOR EACH STATEMENT EXECUTE FUNCTION incident_reports_no_truncate();
