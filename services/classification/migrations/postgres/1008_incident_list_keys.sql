-- ListIncidents finds a page's keys first (the store's `list_incidents`): each index it
-- may start from holds every column a filter can name, so the filters are checked in
-- the index (an index-only scan) and only the page's rows are read. With the filters
-- checked on the rows instead, a filter that one incident in a hundred passes read a
-- hundred rows for each it returned: on a million incidents an officer's high, personal
-- incidents of one category took 43 ms alone, 275 ms at p99 under 32 callers.
-- These replace the list indexes of 1004 and 1007 (and 1003's by category, which the
-- related-incident lookup reads the same way); 1009 drops those once these are built.
-- Building them stops writes to the register until they are built (seconds per hundred
-- thousand incidents); give up on a long wait for the lock rather than queue every write.
SET LOCAL lock_timeout = '5s';
CREATE INDEX incidents_keys_by_time ON incidents (declared_at, id)
    INCLUDE (state, overall_level, category, officer, service_affecting, personal_data);
CREATE INDEX incidents_keys_by_state ON incidents (state, declared_at, id)
    INCLUDE (overall_level, category, officer, service_affecting, personal_data);
CREATE INDEX incidents_keys_by_level ON incidents (overall_level, declared_at, id)
    INCLUDE (state, category, officer, service_affecting, personal_data);
CREATE INDEX incidents_keys_by_category ON incidents (category, declared_at, id)
    INCLUDE (state, overall_level, officer, service_affecting, personal_data);
CREATE INDEX incidents_keys_by_officer ON incidents (officer, declared_at, id)
    INCLUDE (state, overall_level, category, service_affecting, personal_data)
    WHERE officer IS NOT NULL;
CREATE INDEX incidents_keys_service_affecting ON incidents (declared_at, id)
    INCLUDE (state, overall_level, category, officer, personal_data)
    WHERE service_affecting;
CREATE INDEX incidents_keys_personal_data ON incidents (declared_at, id)
    INCLUDE (state, overall_level, category, officer, service_affecting)
    WHERE personal_data;
-- The open incidents (OPEN to RESOLVED), the usual question: a small, recent part.
CREATE INDEX incidents_keys_open ON incidents (declared_at, id)
    INCLUDE (state, overall_level, category, officer, service_affecting, personal_data)
    WHERE state < 6;
CREATE INDEX incidents_keys_open_by_category ON incidents (category, declared_at, id)
    INCLUDE (state, overall_level, officer, service_affecting, personal_data)
    WHERE state < 6;
CREATE INDEX incidents_keys_open_by_level ON incidents (overall_level, declared_at, id)
    INCLUDE (state, category, officer, service_affecting, personal_data)
    WHERE state < 6;
