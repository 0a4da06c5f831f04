-- Retention removes rollup rows by bucket time, in batches; the rollups are keyed by tenant and
-- name first, so without this every batch would scan the whole table. Buckets are upserted
-- roughly in time order, so BRIN indexes are tiny and cost next to nothing on write.
CREATE INDEX event_counts_minute_bucket_idx ON event_counts_minute USING brin (bucket);
CREATE INDEX event_counts_hour_bucket_idx ON event_counts_hour USING brin (bucket);
