//! The diesel schema; keep it in step with `migrations/`.

diesel::table! {
    /// Every stored event, range-partitioned by `occurred_at` (see migrations/README.md). Diesel
    /// needs a key to name a row; `(tenant_id, event_id)` is unique through `event_identities`.
    event_log (tenant_id, event_id) {
        tenant_id -> Text,
        event_id -> Text,
        event_name -> Text,
        occurred_at -> Timestamptz,
        properties -> Nullable<Jsonb>,
        payload_hash -> Bytea,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    /// One row per stored event's identity: what makes a replay a duplicate across partitions.
    event_identities (tenant_id, event_id) {
        tenant_id -> Text,
        event_id -> Text,
        occurred_at -> Timestamptz,
        payload_hash -> Bytea,
        received_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(event_log, event_identities);
