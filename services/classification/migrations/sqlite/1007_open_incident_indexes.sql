-- See the PostgreSQL migration. On SQLite every index costs the one writer: the open
-- incidents by time only.
CREATE INDEX incidents_open_time ON incidents (declared_at, id) WHERE state < 6;
