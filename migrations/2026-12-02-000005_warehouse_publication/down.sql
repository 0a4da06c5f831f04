DROP PUBLICATION event_export;
REVOKE ALL ON event_log FROM event_export_reader;
REVOKE ALL ON SCHEMA public FROM event_export_reader;
DROP ROLE event_export_reader;
