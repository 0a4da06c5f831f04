DROP TRIGGER events_claim_identities ON events;
DROP FUNCTION events_claim_identities();
ALTER TABLE event_log DETACH PARTITION events;
DROP TABLE event_log;
DROP TABLE event_identities;
DROP PROCEDURE event_identities_backfill(integer);
