//! The diesel schema; keep it in step with `migrations/`.

diesel::table! {
    /// One row per accepted event, keyed by its idempotency identity.
    events (tenant_id, event_id) {
        tenant_id -> Text,
        event_id -> Text,
        event_name -> Text,
        occurred_at -> Timestamptz,
        properties -> Nullable<Jsonb>,
        payload_hash -> Bytea,
        received_at -> Timestamptz,
    }
}
