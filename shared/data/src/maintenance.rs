//! Keeping the partitioned event log in shape: partitions ready ahead of time, stray rows out of
//! the default partition, expired days dropped whole, and the identities and rollups of dropped
//! days expired with them. Run by `migrate maintain` (a Cloud Run job on a schedule) and by
//! `local` on a timer.
//!
//! - Every run is idempotent and safe under full ingest; one run at a time (an advisory lock:
//!   a second run finds it taken and does nothing).
//! - A day's partition is created as a plain table and then attached, which locks only the
//!   default partition (to move that day's stray rows and prove none are left), never the whole
//!   log. Moving rows changes no count (see `create_partition`). A day whose lock cannot be had
//!   in time is left to the next run (its events wait in the default partition meanwhile).
//! - With a default partition PostgreSQL cannot detach concurrently, so detaching an expired
//!   day takes an exclusive lock on the log. Inserts queue behind it while it waits, so it waits
//!   at most `DETACH_LOCK_TIMEOUT` per attempt, in a transaction that does nothing else; a day
//!   whose lock cannot be had after `DETACH_ATTEMPTS` is left to the next run. The detached
//!   table's identities are then expired, found by its rows' keys, and it is dropped, neither
//!   of which locks anything ingest uses (a table left detached by a run that stopped in
//!   between is finished by the next).
//! - Every step is paced: after it the run pauses as long as it took (see `paced`).
//! - A day is dropped once all of it is more than a day past the retention horizon: the day of
//!   margin covers clock differences between this job and the functions, which refuse events
//!   and counts before the horizon, so no count ever reads a half-dropped window.

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::{DataError, Pool};

/// The advisory lock key that serialises maintenance runs (an arbitrary constant).
const MAINTENANCE_LOCK: i64 = 7_461_312_002;

/// How long a DDL statement waits for its lock before the run gives up on that step.
const LOCK_TIMEOUT: &str = "2s";

/// How long one attempt to detach a partition waits for the log's exclusive lock: every insert
/// that arrives meanwhile waits behind it, so this bounds the stall a busy lock can cause.
const DETACH_LOCK_TIMEOUT: &str = "50ms";

/// Attempts to detach a partition, a pause apart, before it is left to the next run.
const DETACH_ATTEMPTS: u32 = 5;

/// The pause between two attempts, for the inserts that queued behind the last one.
const DETACH_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Rows deleted per statement when expiring rollups: each batch commits on its own, so its WAL
/// reaches the disk in small pieces rather than in one burst that every concurrent commit would
/// wait behind.
const EXPIRY_BATCH: i64 = 2_000;

/// Pages of a dropped day read per statement when expiring its identities: 25 pages hold
/// 1,000 to 2,000 events, so each batch is a few milliseconds' work.
const EXPIRY_PAGES: i64 = 25;

/// What one run should do.
#[derive(Debug, Clone, Default)]
pub struct MaintenancePlan {
    /// `RETENTION_DAYS`: drop days older than this (`None`: keep everything).
    pub retention_days: Option<u32>,
    /// `PARTITION_AHEAD_DAYS`: keep partitions ready this many days past today.
    pub ahead_days: u32,
    /// `EXPORT_REPLICATION_SLOT`: the logical replication slot the warehouse export reads.
    pub export_slot: Option<String>,
    /// `EXPORT_REPLICATION_USER`: the database user the warehouse export connects as.
    pub export_user: Option<String>,
}

impl From<&settings::Config> for MaintenancePlan {
    fn from(config: &settings::Config) -> Self {
        Self {
            retention_days: config.retention_days,
            ahead_days: config.partition_ahead_days,
            export_slot: config.export_replication_slot.clone(),
            export_user: config.export_replication_user.clone(),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Another run held the lock, so this one did nothing.
    pub skipped: bool,
    /// Partitions created, by name.
    pub created: Vec<String>,
    /// Rows moved out of the default partition into their day's new partition.
    pub moved_from_default: i64,
    /// Partitions dropped, by name.
    pub dropped: Vec<String>,
    /// Partitions due to be created or dropped whose lock could not be had in time; the next
    /// run does it.
    pub deferred: Vec<String>,
    pub identities_expired: i64,
    pub rollup_rows_expired: i64,
    /// What was set up for the warehouse export, or why it could not be.
    pub export: Vec<String>,
}

impl MaintenanceReport {
    /// One log line saying what the run did.
    pub fn log(&self) {
        if self.skipped {
            tracing::info!("another maintenance run holds the lock; this one did nothing");
            return;
        }
        tracing::info!(
            created = ?self.created,
            moved_from_default = self.moved_from_default,
            dropped = ?self.dropped,
            deferred = ?self.deferred,
            identities_expired = self.identities_expired,
            rollup_rows_expired = self.rollup_rows_expired,
            export = ?self.export,
            "maintenance done"
        );
        if !self.deferred.is_empty() {
            tracing::warn!(deferred = ?self.deferred, "partitions left for the next run to create or drop: their lock was busy");
        }
    }
}

/// The log's partitions by name: `events` (everything before the cutover), `event_log_default`,
/// and one `event_log_pYYYYMMDD` per UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partitions {
    cutover: DateTime<Utc>,
    legacy: bool,
    days: Vec<NaiveDate>,
}

/// The name of a day's partition.
pub fn partition_name(day: NaiveDate) -> String {
    format!("event_log_p{}", day.format("%Y%m%d"))
}

fn day_of_partition(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix("event_log_p")?, "%Y%m%d").ok()
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc())
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Cutover {
    #[diesel(sql_type = Timestamptz)]
    cutover: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Day {
    #[diesel(sql_type = Timestamptz)]
    day: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Runs maintenance once, at the clock `now`.
pub async fn maintain(pool: &Pool, now: DateTime<Utc>, plan: &MaintenancePlan) -> Result<MaintenanceReport, DataError> {
    let mut conn = pool.get().await?;
    let locked: Locked = diesel::sql_query(format!("SELECT pg_try_advisory_lock({MAINTENANCE_LOCK}) AS locked"))
        .get_result(&mut *conn)
        .await?;
    if !locked.locked {
        return Ok(MaintenanceReport { skipped: true, ..MaintenanceReport::default() });
    }
    let outcome = run(&mut conn, now, plan).await;
    // Released whatever happened: the connection goes back to the pool.
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MAINTENANCE_LOCK})")).execute(&mut *conn).await?;
    outcome
}

async fn run(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    plan: &MaintenancePlan,
) -> Result<MaintenanceReport, DataError> {
    let mut report = MaintenanceReport { export: ensure_export(conn, plan).await?, ..MaintenanceReport::default() };
    let mut partitions = list_partitions(conn).await?;
    let today = now.date_naive();

    // Days ahead, from the cutover (the legacy partition holds what is before it) or yesterday.
    let first = partitions.cutover.date_naive().max(today - Days::new(1));
    let mut wanted: Vec<NaiveDate> =
        first.iter_days().take_while(|d| *d <= today + Days::new(plan.ahead_days.into())).collect();
    // And the day of any row that landed in the default partition.
    let strays: Vec<Day> = diesel::sql_query(
        "SELECT DISTINCT date_trunc('day', occurred_at, 'UTC') AS day FROM event_log_default ORDER BY 1",
    )
    .load(conn)
    .await?;
    wanted.extend(strays.iter().map(|d| d.day.date_naive()));
    wanted.sort_unstable();
    wanted.dedup();
    for day in wanted {
        if partitions.days.contains(&day) || (partitions.legacy && start_of(day) < partitions.cutover) {
            continue;
        }
        match paced(create_partition(conn, day)).await {
            Ok(moved) => {
                report.moved_from_default += moved;
                report.created.push(partition_name(day));
                partitions.days.push(day);
            }
            // Its events wait in the default partition until the next run.
            Err(err) if lock_timed_out(&err) => report.deferred.push(partition_name(day)),
            Err(err) => return Err(err.into()),
        }
    }

    let Some(days) = plan.retention_days else { return Ok(report) };
    // Dropped once wholly more than a day past the horizon.
    let drop_before = now - TimeDelta::days(i64::from(days) + 1);
    // A day's table, or the legacy `events` (everything before the cutover), once wholly past.
    let expired = |name: &str| match day_of_partition(name) {
        Some(day) => start_of(day + Days::new(1)) <= drop_before,
        None => name == "events" && partitions.cutover <= drop_before,
    };
    // Tables detached by a run that stopped before dropping them: what is left is done.
    for name in detached_leftovers(conn).await?.into_iter().filter(|name| expired(name)) {
        report.identities_expired += drop_detached(conn, &name).await?;
        report.dropped.push(name);
    }
    let attached =
        partitions.days.iter().map(|day| partition_name(*day)).chain(partitions.legacy.then(|| "events".to_owned()));
    for name in attached.filter(|name| expired(name)) {
        if paced(detach(conn, &name)).await? {
            report.identities_expired += drop_detached(conn, &name).await?;
            report.dropped.push(name);
        } else {
            report.deferred.push(name);
        }
    }

    // Rollups of what is gone: below the lowest day still stored.
    let remaining = list_partitions(conn).await?;
    if !remaining.legacy {
        let bound = remaining.days.iter().min().map_or(drop_before, |day| start_of(*day).min(drop_before));
        report.rollup_rows_expired = delete_in_batches(conn, "event_counts_minute", "bucket", bound).await?
            + delete_in_batches(conn, "event_counts_hour", "bucket", bound).await?;
    }
    Ok(report)
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// What the warehouse export needs of the database, which only this job (running as the
/// service's owner) may set up: its user may read the log and replicate, and its replication
/// slot exists (only with `wal_level = logical`: a slot nobody reads keeps WAL for ever, so it
/// is made only where the export is switched on).
async fn ensure_export(conn: &mut AsyncPgConnection, plan: &MaintenancePlan) -> Result<Vec<String>, DataError> {
    let mut done = Vec::new();
    if let Some(user) = &plan.export_user {
        let exists: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_roles WHERE rolname = $1")
            .bind::<Text, _>(user)
            .get_result(conn)
            .await?;
        if exists.n == 0 {
            done.push(format!("user {user} does not exist yet"));
        } else {
            // Names are checked by settings: letters, digits and underscores.
            conn.batch_execute(&format!(
                "GRANT event_export_reader TO \"{user}\"; ALTER ROLE \"{user}\" WITH REPLICATION;"
            ))
            .await?;
            done.push(format!("user {user} may read event_log and replicate"));
        }
    }
    if let Some(slot) = &plan.export_slot {
        let level: Setting = diesel::sql_query("SELECT current_setting('wal_level') AS value").get_result(conn).await?;
        let exists: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_replication_slots WHERE slot_name = $1")
            .bind::<Text, _>(slot)
            .get_result(conn)
            .await?;
        if level.value != "logical" {
            done.push(format!("slot {slot} not made: wal_level is {}, not logical", level.value));
        } else if exists.n == 0 {
            diesel::sql_query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')")
                .bind::<Text, _>(slot)
                .execute(conn)
                .await?;
            done.push(format!("slot {slot} created"));
        }
    }
    Ok(done)
}

async fn list_partitions(conn: &mut AsyncPgConnection) -> Result<Partitions, DataError> {
    let names: Vec<Name> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'event_log'::regclass",
    )
    .load(conn)
    .await?;
    let cutover: Cutover = diesel::sql_query("SELECT cutover FROM event_log_cutover").get_result(conn).await?;
    let mut days: Vec<NaiveDate> = names.iter().filter_map(|n| day_of_partition(&n.name)).collect();
    days.sort_unstable();
    Ok(Partitions { cutover: cutover.cutover, legacy: names.iter().any(|n| n.name == "events"), days })
}

/// Creates `day`'s partition, moving that day's rows out of the default partition, and
/// returns how many were moved. Inserts into the default partition wait for the few
/// milliseconds this takes; every other insert goes on.
///
/// The rows move through `event_log` itself, out before the attach and back in after it, in
/// one transaction: the rollup triggers subtract and add them back (no count changes, and no
/// reader sees them gone), and the warehouse publication carries the move as a delete followed
/// by an insert of the same event (a row copied into a table not yet attached would not be
/// published at all).
async fn create_partition(conn: &mut AsyncPgConnection, day: NaiveDate) -> Result<i64, diesel::result::Error> {
    let name = partition_name(day);
    let (from, to) = (start_of(day), start_of(day + Days::new(1)));
    let (lower, upper) = (from.to_rfc3339(), to.to_rfc3339());
    conn.transaction(async |conn| {
        conn.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
             LOCK TABLE event_log_default IN SHARE ROW EXCLUSIVE MODE;
             CREATE TEMPORARY TABLE moving (LIKE event_log) ON COMMIT DROP;"
        ))
        .await?;
        // No partition covers the day yet, so only the default partition holds its rows.
        let moved: Count = diesel::sql_query(
            "WITH moved AS (
                 DELETE FROM event_log WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *
             ), kept AS (
                 INSERT INTO moving SELECT * FROM moved RETURNING 1
             ) SELECT count(*) AS n FROM kept",
        )
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .get_result(conn)
        .await?;
        // The CHECK lets ATTACH skip its scan of the new table; the replica identity lets the
        // warehouse publication carry deletes (erasure) from it.
        conn.batch_execute(&format!(
            "CREATE TABLE {name} (LIKE event_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
                 WITH (autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_insert_threshold = 10000,
                       autovacuum_analyze_scale_factor = 0.02);
             ALTER TABLE {name} ADD CONSTRAINT {name}_bound CHECK (occurred_at >= '{lower}' AND occurred_at < '{upper}');
             ALTER TABLE {name} REPLICA IDENTITY FULL;
             ALTER TABLE event_log ATTACH PARTITION {name} FOR VALUES FROM ('{lower}') TO ('{upper}');
             ALTER TABLE {name} DROP CONSTRAINT {name}_bound;
             INSERT INTO event_log SELECT * FROM moving;"
        ))
        .await?;
        Ok(moved.n)
    })
    .await
}

/// Detaches a partition; false when the log's lock could not be had in time. The detach
/// commits on its own, holding the exclusive lock as briefly as PostgreSQL allows: without
/// waiting for its commit to reach the disk (`synchronous_commit = off`), since the run's next
/// commit (its first expiry batch, or the drop) flushes it, and a detach lost to a crash is
/// only done again by the next run.
async fn detach(conn: &mut AsyncPgConnection, name: &str) -> Result<bool, DataError> {
    for attempt in 1..=DETACH_ATTEMPTS {
        let detached = conn
            .transaction(async |conn| {
                conn.batch_execute(&format!(
                    "SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}';
                     SET LOCAL synchronous_commit = off;
                     ALTER TABLE event_log DETACH PARTITION {name};"
                ))
                .await
            })
            .await;
        match detached {
            Ok(()) => return Ok(true),
            Err(err) if lock_timed_out(&err) => {
                if attempt < DETACH_ATTEMPTS {
                    tokio::time::sleep(DETACH_PAUSE).await;
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(false)
}

/// Expires the identities of a table detached from the log, then drops it (neither locks
/// anything ingest uses), and returns how many identities were expired. Each batch records in
/// `expiry_progress` where the next one starts, so a run stopped in between is resumed there.
///
/// The identities to expire are exactly the keys of the table's rows (an identity and its
/// event are written by one statement, with the same time), looked up one by one by primary
/// key (the `LIMIT 1` keeps the planner from joining by a scan of every identity), a few
/// pages of the table at a time: the work grows with the day being dropped, never with the
/// identities kept. (A search of `event_identities` by time instead read again, batch after
/// batch, every page it had already emptied, and at the end every page it kept.)
async fn drop_detached(conn: &mut AsyncPgConnection, name: &str) -> Result<i64, DataError> {
    let pages: Count =
        diesel::sql_query(format!("SELECT pg_relation_size('{name}') / current_setting('block_size')::bigint AS n"))
            .get_result(conn)
            .await?;
    let done: Count =
        diesel::sql_query("SELECT coalesce((SELECT next_page FROM expiry_progress WHERE table_name = $1), 0) AS n")
            .bind::<Text, _>(name)
            .get_result(conn)
            .await?;
    let mut expired = 0;
    for first in (done.n..pages.n).step_by(EXPIRY_PAGES as usize) {
        let batch: Count = paced(
            diesel::sql_query(format!(
                "WITH gone AS (
                     DELETE FROM event_identities WHERE ctid = ANY (ARRAY(
                         SELECT i.ctid FROM {name} d CROSS JOIN LATERAL (
                             SELECT ctid FROM event_identities
                             WHERE tenant_id = d.tenant_id AND event_id = d.event_id AND occurred_at = d.occurred_at
                             LIMIT 1
                         ) i
                         WHERE d.ctid >= format('(%s,0)', $2::bigint)::tid
                           AND d.ctid < format('(%s,0)', $3::bigint)::tid))
                     RETURNING 1
                 ), progress AS (
                     INSERT INTO expiry_progress (table_name, next_page) VALUES ($1, $3)
                     ON CONFLICT (table_name) DO UPDATE SET next_page = EXCLUDED.next_page
                 ) SELECT count(*) AS n FROM gone"
            ))
            .bind::<Text, _>(name)
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(first + EXPIRY_PAGES)
            .get_result(conn),
        )
        .await?;
        expired += batch.n;
    }
    // One transaction: the progress row goes with the table.
    paced(conn.batch_execute(&format!("DROP TABLE {name}; DELETE FROM expiry_progress WHERE table_name = '{name}';")))
        .await?;
    Ok(expired)
}

/// Runs one step of a run, then pauses as long as it took: a run uses at most half of one
/// backend's time and of the disk's, however busy the database is, and the bursts of work
/// it causes (WAL, new and removed files, catalog changes) reach ingest one at a time.
async fn paced<T>(step: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let done = step.await;
    tokio::time::sleep(started.elapsed()).await;
    done
}

/// Whether a statement gave up waiting for a lock (`lock_timeout`).
fn lock_timed_out(err: &diesel::result::Error) -> bool {
    matches!(err, diesel::result::Error::DatabaseError(_, info) if info.message().contains("lock timeout"))
}

/// Day tables (and the legacy `events`) that are no longer partitions of the log: detached by a
/// run that stopped before it dropped them.
async fn detached_leftovers(conn: &mut AsyncPgConnection) -> Result<Vec<String>, DataError> {
    let names: Vec<Name> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c
         WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
           AND (c.relname LIKE 'event\\_log\\_p%' OR c.relname = 'events')
           AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
         ORDER BY 1",
    )
    .load(conn)
    .await?;
    Ok(names.into_iter().map(|n| n.name).collect())
}

/// Deletes the rows of `table` with `column < bound`, a batch per statement, each paced (see
/// `paced`), and returns how many. Every batch commits on its own, so nothing holds a long
/// transaction.
async fn delete_in_batches(
    conn: &mut AsyncPgConnection,
    table: &str,
    column: &str,
    bound: DateTime<Utc>,
) -> Result<i64, DataError> {
    let mut total = 0;
    loop {
        let deleted: Count = paced(
            diesel::sql_query(format!(
                "WITH gone AS (
                     DELETE FROM {table} WHERE ctid = ANY (ARRAY(
                         SELECT ctid FROM {table} WHERE {column} < $1 LIMIT {EXPIRY_BATCH}))
                     RETURNING 1
                 ) SELECT count(*) AS n FROM gone"
            ))
            .bind::<Timestamptz, _>(bound)
            .get_result(conn),
        )
        .await?;
        total += deleted.n;
        if deleted.n < EXPIRY_BATCH {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 2, 13).expect("valid");
        assert_eq!(partition_name(day), "event_log_p20260213");
        assert_eq!(day_of_partition("event_log_p20260213"), Some(day));
        assert_eq!(day_of_partition("event_log_default"), None);
        assert_eq!(day_of_partition("events"), None);
        assert_eq!(start_of(day).to_rfc3339(), "2026-02-13T00:00:00+00:00");
    }
}
