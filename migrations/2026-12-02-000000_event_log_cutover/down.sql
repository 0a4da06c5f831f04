ALTER TABLE events DROP CONSTRAINT events_before_cutover;
DROP TABLE event_log_cutover;
