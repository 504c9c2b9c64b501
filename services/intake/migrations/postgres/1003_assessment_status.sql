-- The sequence of classification's latest assessment applied to the report's status, so
-- that an assessment event applied late (replayed, or parked and replayed) never
-- overwrites the outcome of a later one.
-- The lock the new column takes is short; give up after 5 s rather than queue every
-- submission behind a long read (the start fails, and the next start tries again).
SET LOCAL lock_timeout = '5s';
ALTER TABLE reports ADD COLUMN assessment_sequence INTEGER NOT NULL DEFAULT 0;
