-- One row per accepted event. The primary key is the idempotency identity:
-- a replay of the same (tenant_id, event_id) never writes a second row.
CREATE TABLE events (
    tenant_id    text        NOT NULL,
    event_id     text        NOT NULL,
    event_name   text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    properties   jsonb,
    -- SHA-256 of the normalised payload; tells a replay from a reused key.
    payload_hash bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id),
    CONSTRAINT events_event_id_length CHECK (octet_length(event_id) BETWEEN 1 AND 255),
    CONSTRAINT events_event_name_length CHECK (char_length(event_name) BETWEEN 1 AND 200),
    CONSTRAINT events_payload_hash_length CHECK (octet_length(payload_hash) = 32),
    CONSTRAINT events_properties_object CHECK (properties IS NULL OR jsonb_typeof(properties) = 'object')
);

-- A window count is an index-only scan on this index.
CREATE INDEX events_window_idx ON events (tenant_id, event_name, occurred_at);

-- The table only grows; index-only scans stay index-only while the visibility
-- map is current, so vacuum after inserts far sooner than the default 20%.
ALTER TABLE events SET (
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02
);
