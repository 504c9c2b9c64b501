-- no-transaction
-- Sets every incident's count to the links it holds (see 1010). From 1010 on the trigger
-- counted the links made and removed, from zero: an incident whose older links were
-- removed since is below zero, and every other one short by the links made before.
--
-- Every incident that holds reports is written again, so this goes a thousand incidents
-- at a time, each batch committed on its own (one statement, no transaction around it):
-- the register stays open, a batch's incidents wait at most a moment, and a start stopped
-- half way (a probe, a deploy) keeps what it did and the next start does it all again
-- (the counts are set, not added to). Measured on 2 cores, 1,000,000 incidents with a
-- link each: 72 s (one statement under a table lock took 176 s, writes waiting).
--
-- Why a batch's count is right: its incidents are locked first (FOR UPDATE, in id order,
-- as AssessReport takes them), which waits for every transaction that has changed them
-- or their links (the trigger updates the incident; a new link's foreign key check locks
-- it). The count is then read by a statement of its own, which sees them committed. A
-- link changed by a transaction still in flight is not in it, and that transaction's +1
-- or -1 waits for the lock, so it is applied once, after.
-- A batch that waits more than 5 s for a lock (a long transaction elsewhere) stops the
-- start; the next one goes on.
DO $$
DECLARE
    last_id UUID := '00000000-0000-0000-0000-000000000000';
    batch UUID[];
BEGIN
    LOOP
        PERFORM set_config('lock_timeout', '5s', true);
        SELECT array_agg(id ORDER BY id) INTO batch FROM (
            SELECT id FROM incidents WHERE id > last_id ORDER BY id LIMIT 1000 FOR UPDATE
        ) held;
        EXIT WHEN batch IS NULL;
        UPDATE incidents i SET report_count = c.reports
            FROM (SELECT b.id, (SELECT COUNT(*) FROM incident_reports r
                                WHERE r.incident_id = b.id) AS reports
                  FROM unnest(batch) AS b(id)) c
            WHERE i.id = c.id AND i.report_count <> c.reports;
        last_id := batch[array_length(batch, 1)];
        COMMIT;
    END LOOP;
END
$$;
