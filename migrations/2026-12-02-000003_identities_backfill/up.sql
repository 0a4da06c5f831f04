-- Expand, step 4 of 4: give every event already in `events` its identity, in batches of 50,000
-- in key order, each committed on its own, so no long transaction holds back vacuum and the
-- previous release keeps writing meanwhile (its new rows get identities from the trigger of
-- step 3). Idempotent: a run interrupted midway is simply run again. `migrate` finishes this
-- before this release serves a request, so from then on the identities are complete.
CALL event_identities_backfill();
