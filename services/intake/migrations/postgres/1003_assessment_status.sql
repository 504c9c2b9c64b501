-- The sequence of classification's latest assessment applied to the report's status, so
-- that an assessment event applied late (replayed, or parked and replayed) never
-- overwrites the outcome of a later one.
ALTER TABLE reports ADD COLUMN assessment_sequence INTEGER NOT NULL DEFAULT 0;
