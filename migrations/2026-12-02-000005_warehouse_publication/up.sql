-- The warehouse export (docs/warehouse.md): Datastream reads committed changes of `event_log`
-- through logical decoding. This publication says what it sees: inserts (every stored event,
-- once, whatever partition it lands in, reported under `event_log` itself) and deletes (tenant
-- erasure, so the warehouse copy is erased too). Not updates (there are none) nor truncates;
-- dropping an expired partition is not a delete, so retention in BigQuery is its own.
--
-- Publishing deletes needs a replica identity on every partition: the whole old row (FULL),
-- as partitions have no primary key (`events`, the first partition, keeps its own). Only
-- erasure deletes rows, rarely, so the extra WAL does not matter. Maintenance sets it on the
-- partitions it creates.
CREATE PUBLICATION event_export FOR TABLE event_log
    WITH (publish = 'insert, delete', publish_via_partition_root = true);
ALTER TABLE event_log_default REPLICA IDENTITY FULL;
DO $$
DECLARE
    partition regclass;
BEGIN
    FOR partition IN
        SELECT inhrelid::regclass FROM pg_inherits
        WHERE inhparent = 'event_log'::regclass AND inhrelid::regclass::text LIKE 'event_log_p%'
    LOOP
        EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', partition);
    END LOOP;
END $$;

-- What the export's database user may read, granted to it by maintenance when
-- EXPORT_REPLICATION_USER names it (the user itself, with its password, is Terraform's).
-- Roles belong to the whole server, which may hold other databases that created it already.
DO $$
BEGIN
    CREATE ROLE event_export_reader NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;
GRANT USAGE ON SCHEMA public TO event_export_reader;
GRANT SELECT ON event_log TO event_export_reader;
