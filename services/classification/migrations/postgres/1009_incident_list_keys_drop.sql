-- The indexes 1008 replaced, dropped in a transaction of their own: dropping takes the
-- register's exclusive lock, which should be held for a moment, not for as long as
-- 1008's builds took.
SET LOCAL lock_timeout = '5s';
DROP INDEX incidents_by_time, incidents_by_state_time, incidents_by_level_time,
    incidents_by_officer_time, incidents_service_affecting_time, incidents_personal_data_time,
    incidents_open_time, incidents_open_category_time, incidents_open_level_time,
    incidents_by_category_time;
