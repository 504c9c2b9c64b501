-- One audit row per call, its targets an array: a list of fifty reports read was fifty
-- rows and a hundred index entries, written while the caller waited. Only added to, so
-- that replicas still running the previous release (during a rolling update) go on
-- writing their rows with `target_id`, and no row is rewritten: a row names its targets
-- in one of the two columns, and `audit::entries` reads both. A target's entries are
-- found through the GIN index, kept up to date at each insert rather than through a
-- pending list whose flush would stall one insert, and so every read waiting on it.
-- Adding the column and the constraint is instant; the index build reads the table once
-- and holds back audit writes meanwhile (give up after 5 s of waiting for the lock
-- rather than queue every audited read behind a long one: the next start tries again).
SET LOCAL lock_timeout = '5s';
ALTER TABLE audit_log ADD COLUMN target_ids TEXT[];
ALTER TABLE audit_log ALTER COLUMN target_id DROP NOT NULL;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_names_targets
    CHECK (target_id IS NOT NULL OR target_ids IS NOT NULL) NOT VALID;
CREATE INDEX audit_log_targets ON audit_log USING GIN (target_ids) WITH (fastupdate = off)
    WHERE target_ids IS NOT NULL;
