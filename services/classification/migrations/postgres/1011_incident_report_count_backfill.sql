-- no-transaction
-- Sets every incident's count to the links it holds (see 1010). From 1010 on the trigger
-- counted the links made and removed, from zero: an incident whose older links were
-- removed since is below zero, and every other one short by the links made before.
--
-- Every incident that holds reports is written again, so this goes a thousand incidents
-- at a time, each batch committed on its own (one statement, no transaction around it):
-- the register stays open, a batch's incidents wait at most a moment, and a start stopped
-- half way (a probe, a deploy) leaves the batches it committed right (the trigger keeps
-- them so); the next start goes through them all again (the counts are set, not added).
-- Measured on 2 cores, 1,000,000 incidents with a link each: 58 s (one statement under a
-- table lock took 176 s, writes waiting).
--
-- Why a batch's count is right: its incidents are locked first (FOR NO KEY UPDATE, in id
-- order), which waits for every transaction whose trigger has counted a link change on
-- them (that update holds the same lock until it commits). The count is then read by a
-- statement of its own, which sees those committed. A link changed by a transaction still
-- in flight is not in it, and that transaction's +1 or -1 waits for the lock, so it is
-- applied once, after. (New links' foreign key checks take a weaker lock and go on.)
--
-- While this runs, replicas of the previous version serve alone. One of theirs that moves
-- a report locks the new incident first and the old one through the trigger: against a
-- batch that holds the old and wants the new, a deadlock, which PostgreSQL ends. A batch
-- that meets one, or waits more than 5 s for a lock (a long transaction elsewhere), is
-- tried again from where it was, up to 60 times; then the start stops, saying why.
DO $$
DECLARE
    last_id UUID := '00000000-0000-0000-0000-000000000000';
    batch UUID[];
    failed_attempts INTEGER := 0;
    failed BOOLEAN;
BEGIN
    LOOP
        failed := FALSE;
        BEGIN
            PERFORM set_config('lock_timeout', '5s', true);
            SELECT array_agg(id ORDER BY id) INTO batch FROM (
                SELECT id FROM incidents WHERE id > last_id ORDER BY id LIMIT 1000
                FOR NO KEY UPDATE
            ) held;
            IF batch IS NOT NULL THEN
                UPDATE incidents i SET report_count = c.reports
                    FROM (SELECT b.id, (SELECT COUNT(*) FROM incident_reports r
                                        WHERE r.incident_id = b.id) AS reports
                          FROM unnest(batch) AS b(id)) c
                    WHERE i.id = c.id AND i.report_count <> c.reports;
            END IF;
        EXCEPTION WHEN deadlock_detected OR lock_not_available THEN
            failed := TRUE;
        END;
        IF failed THEN
            failed_attempts := failed_attempts + 1;
            IF failed_attempts >= 60 THEN
                RAISE EXCEPTION 'counting the reports of incidents after % failed 60 times on a lock: a long transaction holds them (see pg_stat_activity); the next start tries again', last_id
                    USING ERRCODE = 'lock_not_available';
            END IF;
            COMMIT;
            PERFORM pg_sleep(0.1);
            CONTINUE;
        END IF;
        EXIT WHEN batch IS NULL;
        failed_attempts := 0;
        last_id := batch[array_length(batch, 1)];
        COMMIT;
    END LOOP;
END
$$;
