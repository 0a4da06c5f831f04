DROP TRIGGER events_count_delete ON events;
DROP TRIGGER events_count_insert ON events;
DROP FUNCTION events_count_deleted();
DROP FUNCTION events_count_inserted();
DROP TABLE event_counts_hour;
DROP TABLE event_counts_minute;
