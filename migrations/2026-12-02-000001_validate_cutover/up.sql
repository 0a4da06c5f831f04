-- Expand, step 2 of 4: prove the cutover constraint. This reads the whole table, but holds
-- only a SHARE UPDATE EXCLUSIVE lock: the previous release keeps inserting meanwhile.
ALTER TABLE events VALIDATE CONSTRAINT events_before_cutover;
