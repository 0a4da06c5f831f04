//! Tenant erasure (offboarding, a GDPR request): every event, identity and rollup row of one
//! tenant stored before a given instant is removed, in bounded batches, each committed on its
//! own, while that tenant and the others keep sending. Run by `migrate erase-tenant`.
//!
//! - Events go first, through the partitioned log, so the rollup triggers subtract exactly what
//!   is deleted; then their identities (so no replay slips in between and is stored twice).
//! - Then the tenant's rollup rows are compacted: each bucket's shards are replaced by their
//!   sum, or by nothing when it is zero. This removes what the deletes left at zero, keeps the
//!   counts of anything stored since, and never loses a concurrent increment (one that reaches
//!   a row being replaced waits for it and then lands on a fresh row).
//! - Interrupted (a crash, a kill), it is simply run again: each batch is atomic and every step
//!   only removes what is still there.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use domain::TenantId;

use crate::{DataError, Pool};

/// What an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErasureReport {
    pub events: i64,
    pub identities: i64,
    /// Rollup rows removed (shards merged into one row count as removed, less the one kept).
    pub rollup_rows: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Shard {
    #[diesel(sql_type = Text)]
    event_name: String,
    #[diesel(sql_type = Timestamptz)]
    bucket: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Removes what `tenant` stored before `before`, `batch` rows at a time; `progress` is told the
/// running totals after each batch.
pub async fn erase_tenant(
    pool: &Pool,
    tenant: &TenantId,
    before: DateTime<Utc>,
    batch: i64,
    mut progress: impl FnMut(&ErasureReport),
) -> Result<ErasureReport, DataError> {
    let mut conn = pool.get().await?;
    let mut report = ErasureReport::default();
    // The window index finds the tenant's rows in each partition; the join deletes them
    // through the partitioned table, so the rollup trigger sees every one.
    const EVENTS: &str = "WITH victims AS (
            SELECT DISTINCT event_name, occurred_at FROM (
                SELECT event_name, occurred_at FROM event_log
                WHERE tenant_id = $1 AND received_at < $2 LIMIT $3) v
        ), gone AS (
            DELETE FROM event_log e USING victims v
            WHERE e.tenant_id = $1 AND e.event_name = v.event_name AND e.occurred_at = v.occurred_at
              AND e.received_at < $2
            RETURNING 1
        ) SELECT count(*) AS n FROM gone";
    const IDENTITIES: &str = "WITH gone AS (
            DELETE FROM event_identities WHERE ctid = ANY (ARRAY(
                SELECT ctid FROM event_identities WHERE tenant_id = $1 AND received_at < $2 LIMIT $3))
            RETURNING 1
        ) SELECT count(*) AS n FROM gone";
    // Events first, then their identities (so no replay slips in between and is stored twice).
    for (statement, events) in [(EVENTS, true), (IDENTITIES, false)] {
        loop {
            let deleted: Count = diesel::sql_query(statement)
                .bind::<Text, _>(tenant.as_str())
                .bind::<Timestamptz, _>(before)
                .bind::<BigInt, _>(batch)
                .get_result(&mut *conn)
                .await?;
            if deleted.n == 0 {
                break;
            }
            if events {
                report.events += deleted.n;
            } else {
                report.identities += deleted.n;
            }
            progress(&report);
        }
    }
    for table in ["event_counts_minute", "event_counts_hour"] {
        let mut after: Option<(String, DateTime<Utc>)> = None;
        loop {
            let (removed, last) = compact_rollups(&mut conn, table, tenant, after.as_ref(), batch).await?;
            report.rollup_rows += removed;
            let Some(last) = last else { break };
            after = Some(last);
            progress(&report);
        }
    }
    Ok(report)
}

/// Replaces the shards of up to `batch` of the tenant's buckets after `after` (in key order) by
/// their sum, or nothing when it is zero, in one transaction. Returns the rows removed and the
/// last bucket seen (`None` when there were none left).
async fn compact_rollups(
    conn: &mut diesel_async::AsyncPgConnection,
    table: &str,
    tenant: &TenantId,
    after: Option<&(String, DateTime<Utc>)>,
    batch: i64,
) -> Result<(i64, Option<(String, DateTime<Utc>)>), DataError> {
    // Every name sorts after the empty one, so the bucket of the start key does not matter.
    let (after_name, after_bucket) = after.cloned().unwrap_or((String::new(), DateTime::<Utc>::UNIX_EPOCH));
    conn.transaction(async |conn| {
        let shards: Vec<Shard> = diesel::sql_query(format!(
            "WITH buckets AS (
                 SELECT DISTINCT event_name, bucket FROM {table}
                 WHERE tenant_id = $1 AND (event_name, bucket) > ($2, $3)
                 ORDER BY event_name, bucket LIMIT $4
             )
             DELETE FROM {table} c USING buckets b
             WHERE c.tenant_id = $1 AND c.event_name = b.event_name AND c.bucket = b.bucket
             RETURNING c.event_name, c.bucket, c.count"
        ))
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(&after_name)
        .bind::<Timestamptz, _>(after_bucket)
        .bind::<BigInt, _>(batch)
        .load(conn)
        .await?;
        let mut sums: Vec<(String, DateTime<Utc>, i64)> = Vec::new();
        for shard in &shards {
            match sums.iter_mut().find(|(name, bucket, _)| *name == shard.event_name && *bucket == shard.bucket) {
                Some(sum) => sum.2 += shard.count,
                None => sums.push((shard.event_name.clone(), shard.bucket, shard.count)),
            }
        }
        let last = sums.iter().max_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1))).map(|(n, b, _)| (n.clone(), *b));
        sums.retain(|(_, _, count)| *count != 0);
        let kept = i64::try_from(sums.len()).unwrap_or(i64::MAX);
        if !sums.is_empty() {
            let names: Vec<&str> = sums.iter().map(|s| s.0.as_str()).collect();
            let buckets: Vec<DateTime<Utc>> = sums.iter().map(|s| s.1).collect();
            let counts: Vec<i64> = sums.iter().map(|s| s.2).collect();
            diesel::sql_query(format!(
                "INSERT INTO {table} AS c (tenant_id, event_name, bucket, shard, count)
                 SELECT $1, n, b, 0, k FROM unnest($2::text[], $3::timestamptz[], $4::bigint[]) AS t(n, b, k)
                 ORDER BY n, b
                 ON CONFLICT (tenant_id, event_name, bucket, shard) DO UPDATE SET count = c.count + excluded.count"
            ))
            .bind::<Text, _>(tenant.as_str())
            .bind::<Array<Text>, _>(names)
            .bind::<Array<Timestamptz>, _>(buckets)
            .bind::<Array<BigInt>, _>(counts)
            .execute(conn)
            .await?;
        }
        let removed = i64::try_from(shards.len()).unwrap_or(i64::MAX) - kept;
        Ok::<_, DataError>((removed, last))
    })
    .await
}
