-- Counts the links made before 1010's trigger (see 1010).
--
-- The register is held against changes (EXCLUSIVE: reads go on, writes and locking reads
-- wait) for as long as the count takes: on one million incidents, seconds; on a real
-- register, a moment. Taking it waits for every transaction that has changed an incident
-- or a link (the trigger changes incidents), and no such transaction can be waiting for
-- this one, so it cannot deadlock. Once it is held, a link made by a transaction still in
-- flight is not in the count below (not committed) and its trigger's +1 waits for this
-- lock, so it is counted exactly once, after.
-- If the lock is not had within 5 s (a long transaction elsewhere), the start fails with
-- nothing done, and the next start tries again.
SET LOCAL lock_timeout = '5s';
LOCK TABLE incidents IN EXCLUSIVE MODE;
UPDATE incidents i SET report_count = c.reports
    FROM (SELECT incident_id, COUNT(*) AS reports FROM incident_reports GROUP BY incident_id) c
    WHERE c.incident_id = i.id AND i.report_count <> c.reports;
