-- Measured with `tests/load/bench.sh list` on one million reports: a category with a
-- status (the open reports of one category) wants its own index; and one statistics
-- object over all four filter columns kept too few of their combinations to show, for
-- instance, that a category of events never has kind = weakness, so the planner read a
-- whole index to find nothing. Statistics pair by pair keep what each pair shows.
CREATE INDEX reports_by_category_status ON reports (category, status, submitted_at DESC, id DESC);
DROP STATISTICS reports_filters;
CREATE STATISTICS reports_kind_category (mcv) ON kind, category FROM reports;
CREATE STATISTICS reports_kind_status (mcv) ON kind, status FROM reports;
CREATE STATISTICS reports_kind_medium (mcv) ON kind, medium FROM reports;
CREATE STATISTICS reports_category_status (mcv) ON category, status FROM reports;
CREATE STATISTICS reports_category_medium (mcv) ON category, medium FROM reports;
CREATE STATISTICS reports_status_medium (mcv) ON status, medium FROM reports;
-- New statistics objects are empty until the table is analysed (autoanalyze waits for a
-- tenth of the rows to change): fill them now. On a large table the index build above
-- blocks writes to reports until this migration commits (4.4 s on one million reports
-- on 2 cores); submissions meanwhile queue, or their callers retry with their keys.
ANALYZE reports;
