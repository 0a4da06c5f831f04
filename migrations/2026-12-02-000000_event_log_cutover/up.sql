-- Expand, step 1 of 4: partitioning `events` by time without copying it.
--
-- The existing table becomes the first partition of a new range-partitioned table, `event_log`,
-- holding every event before the cutover (the start of the UTC day after tomorrow); later days
-- get partitions of their own (see step 3 and `migrate maintain`). For that, PostgreSQL must know
-- that no row of `events` is at or after the cutover, or attaching it would scan the whole table
-- under an exclusive lock. So this step records the cutover and adds the matching constraint as
-- NOT VALID (instant); step 2 validates it without blocking writes.
--
-- The cutover is two days ahead because the previous release keeps writing into `events` until
-- this release has replaced it, and it accepts events up to an hour in the future.
CREATE TABLE event_log_cutover (
    cutover timestamptz NOT NULL,
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row)
);
INSERT INTO event_log_cutover (cutover) VALUES (date_trunc('day', now(), 'UTC') + interval '2 days');

DO $$
BEGIN
    EXECUTE format(
        'ALTER TABLE events ADD CONSTRAINT events_before_cutover CHECK (occurred_at < %L) NOT VALID',
        (SELECT cutover FROM event_log_cutover)
    );
END $$;
