-- Expand, step 3 of 4: the partitioned event log, and event identities in a table of their own.
--
-- `event_log` is range-partitioned by `occurred_at`: `events` (the table of the first schema,
-- attached as is) holds everything before the cutover, one partition per UTC day follows
-- (`event_log_pYYYYMMDD`, created ahead by `migrate maintain`), and `event_log_default` catches
-- any event whose day has no partition yet, so none is ever refused or lost for want of one;
-- maintenance moves such rows into their day's partition. Retention drops whole partitions.
--
-- A partitioned table's unique keys must contain the partition key, so `(tenant_id, event_id)`
-- cannot be unique across days there. Identity lives in `event_identities` instead: the insert
-- claims the identity (`INSERT … ON CONFLICT DO NOTHING`) and writes the event for the claims
-- that succeeded, in one statement. An identity is kept as long as its event can exist (it is
-- expired when the partition holding its day is dropped).
CREATE TABLE event_identities (
    tenant_id    text        NOT NULL,
    event_id     text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    payload_hash bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
-- Expiry deletes by time; identities arrive roughly in time order, so a BRIN index costs next
-- to nothing on insert and still finds old rows.
CREATE INDEX event_identities_occurred_at_idx ON event_identities USING brin (occurred_at);

CREATE TABLE event_log (
    tenant_id    text        NOT NULL,
    event_id     text        NOT NULL,
    event_name   text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    properties   jsonb,
    payload_hash bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_length CHECK (octet_length(event_id) BETWEEN 1 AND 255),
    CONSTRAINT events_event_name_length CHECK (char_length(event_name) BETWEEN 1 AND 200),
    CONSTRAINT events_payload_hash_length CHECK (octet_length(payload_hash) = 32),
    CONSTRAINT events_properties_object CHECK (properties IS NULL OR jsonb_typeof(properties) = 'object')
) PARTITION BY RANGE (occurred_at);

-- A window count is an index-only scan on this index, partition by partition (`events` brings
-- its own equivalent index, which becomes this one's partition).
CREATE INDEX event_log_window_idx ON event_log (tenant_id, event_name, occurred_at);

CREATE TABLE event_log_default PARTITION OF event_log DEFAULT;

DO $$
BEGIN
    -- No scan: the validated cutover constraint implies the partition's bound.
    EXECUTE format(
        'ALTER TABLE event_log ATTACH PARTITION events FOR VALUES FROM (MINVALUE) TO (%L)',
        (SELECT cutover FROM event_log_cutover)
    );
END $$;

-- The rollups follow what is written through `event_log`, as they followed `events`. A
-- statement on the partitioned table fires only these; the triggers still on `events` fire only
-- for the previous release, which writes into `events` directly until it is replaced, so no
-- event is counted twice.
CREATE TRIGGER event_log_count_insert AFTER INSERT ON event_log
    REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT EXECUTE FUNCTION events_count_inserted();
CREATE TRIGGER event_log_count_delete AFTER DELETE ON event_log
    REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION events_count_deleted();

-- Events the previous release writes into `events` directly get their identity here, in the
-- same transaction; step 4 gives the older ones theirs.
CREATE FUNCTION events_claim_identities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_identities (tenant_id, event_id, occurred_at, payload_hash, received_at)
    SELECT tenant_id, event_id, occurred_at, payload_hash, received_at FROM inserted_rows
    ORDER BY tenant_id, event_id
    ON CONFLICT (tenant_id, event_id) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER events_claim_identities AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT EXECUTE FUNCTION events_claim_identities();

-- Step 4's batched backfill, as a procedure so that it can commit between batches.
CREATE PROCEDURE event_identities_backfill(batch_size integer DEFAULT 50000) LANGUAGE plpgsql AS $$
DECLARE
    after_tenant text := '';
    after_event  text := '';
BEGIN
    LOOP
        WITH batch AS (
            SELECT tenant_id, event_id, occurred_at, payload_hash, received_at FROM events
            WHERE (tenant_id, event_id) > (after_tenant, after_event)
            ORDER BY tenant_id, event_id
            LIMIT batch_size
        ), claimed AS (
            INSERT INTO event_identities (tenant_id, event_id, occurred_at, payload_hash, received_at)
            SELECT tenant_id, event_id, occurred_at, payload_hash, received_at FROM batch
            ON CONFLICT (tenant_id, event_id) DO NOTHING
        )
        SELECT tenant_id, event_id INTO after_tenant, after_event
        FROM batch ORDER BY tenant_id DESC, event_id DESC LIMIT 1;
        EXIT WHEN NOT FOUND;
        COMMIT;
    END LOOP;
END $$;
