-- ListIncidents asks mostly about open incidents (states OPEN to RESOLVED), which are a
-- small, recent part of the register: indexes of the open ones alone, by time, and by
-- category and level within time, so that a filter on open states with a category or a
-- level reads an ordered range instead of filtering every closed incident on the way.
-- CREATE INDEX blocks writes to the table while it runs (the register is small beside the
-- triage queue); give up on a long wait for the lock rather than queue every write.
SET LOCAL lock_timeout = '5s';
CREATE INDEX incidents_open_time ON incidents (declared_at, id) WHERE state < 6;
CREATE INDEX incidents_open_category_time ON incidents (category, declared_at, id)
    WHERE state < 6;
CREATE INDEX incidents_open_level_time ON incidents (overall_level, declared_at, id)
    WHERE state < 6;
