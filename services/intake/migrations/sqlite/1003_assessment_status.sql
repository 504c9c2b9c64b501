-- See the PostgreSQL migration.
ALTER TABLE reports ADD COLUMN assessment_sequence INTEGER NOT NULL DEFAULT 0;
