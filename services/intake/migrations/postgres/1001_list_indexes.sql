-- ListReports builds its statement from the filters given (see store/reports.rs) and
-- pages newest first. Beside (submitted_at, id), which serves no filter, time windows and
-- unselective filters, these serve the selective ones: a category (many values, some
-- rare), a status (rare ones such as escalated), a kind with a category (a category of
-- weaknesses asked for with kind = event matches nothing, and without this index would
-- be read whole to find that out), and a reporter's own reports (already indexed).
-- Statistics on the filter columns together tell the planner how they go together.
CREATE INDEX reports_by_category ON reports (category, submitted_at DESC, id DESC);
CREATE INDEX reports_by_status ON reports (status, submitted_at DESC, id DESC);
CREATE INDEX reports_by_kind_category ON reports (kind, category, submitted_at DESC, id DESC);
CREATE STATISTICS reports_filters (dependencies, mcv) ON kind, category, status, medium FROM reports;
