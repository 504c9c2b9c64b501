-- See the PostgreSQL migration.
CREATE INDEX reports_by_category ON reports (category, submitted_at DESC, id DESC);
CREATE INDEX reports_by_status ON reports (status, submitted_at DESC, id DESC);
CREATE INDEX reports_by_kind_category ON reports (kind, category, submitted_at DESC, id DESC);
