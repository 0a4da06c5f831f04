//! Upgrading a deployment of the previous release: a database migrated to the first schema and
//! filled by that release's own insert statement, which keeps writing while this release's
//! migrations run (as its revision does during a rollout). Afterwards every event is stored
//! and counted exactly once, has its identity, and replays of old events are duplicates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{Array, Bytea, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};

use crate::ambiguity::legacy_fingerprint;
use crate::harness::{ACME_KEY, GLOBEX_KEY, TestApp, TestDatabase};

/// The previous release's insert, word for word.
const PREVIOUS_INSERT: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::bytea[])
        WITH ORDINALITY AS t(tenant_id, event_id, event_name, occurred_at, properties, payload_hash, ord)
), inserted AS (
    INSERT INTO events (tenant_id, event_id, event_name, occurred_at, properties, payload_hash)
    SELECT tenant_id, event_id, event_name, occurred_at, properties, payload_hash FROM input
    ORDER BY tenant_id, event_id
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING tenant_id, event_id
)
SELECT count(*) FROM inserted";

/// The migrations of the previous release.
const PREVIOUS_MIGRATIONS: [&str; 2] = ["2026-11-26-000000_create_events", "2026-11-26-000001_count_rollups"];

struct Old {
    tenant: &'static str,
    id: String,
    name: &'static str,
    at: DateTime<Utc>,
    properties: Value,
}

fn old_event(i: usize) -> Old {
    let base: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().expect("valid");
    Old {
        tenant: if i.is_multiple_of(3) { "globex" } else { "acme" },
        id: format!("old-{i}"),
        name: if i.is_multiple_of(2) { "signup" } else { "checkout" },
        at: base + TimeDelta::seconds(i64::try_from(i).unwrap_or(0) * 97),
        // A float written as the previous release stored it (`3.0`), so replays need its
        // version-1 fingerprint.
        properties: json!({"seats": 3.0, "n": i}),
    }
}

/// Stores `events` as the previous release did (one statement, version-1 fingerprints).
async fn store_as_previous_release(conn: &mut AsyncPgConnection, events: &[Old]) -> usize {
    let hashes: Vec<Vec<u8>> = events
        .iter()
        .map(|e| legacy_fingerprint(e.name, e.at.timestamp_micros(), Some(&e.properties.to_string())))
        .collect();
    #[derive(diesel::QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let inserted: Inserted = diesel::sql_query(PREVIOUS_INSERT)
        .bind::<Array<Text>, _>(events.iter().map(|e| e.tenant).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(events.iter().map(|e| e.name).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(events.iter().map(|e| e.at).collect::<Vec<_>>())
        .bind::<Array<Nullable<Jsonb>>, _>(events.iter().map(|e| Some(&e.properties)).collect::<Vec<_>>())
        .bind::<Array<Bytea>, _>(hashes)
        .get_result(conn)
        .await
        .expect("the previous release's insert");
    usize::try_from(inserted.count).unwrap_or(0)
}

#[tokio::test]
async fn an_existing_deployment_upgrades_without_losing_or_double_counting_an_event() {
    let db = TestDatabase::create_empty().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.expect("connect");
    // The database as the previous release's `migrate` left it.
    conn.batch_execute(
        "CREATE TABLE __diesel_schema_migrations (
             version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .await
    .expect("migration bookkeeping");
    for migration in PREVIOUS_MIGRATIONS {
        let sql = std::fs::read_to_string(format!("{}/../migrations/{migration}/up.sql", env!("CARGO_MANIFEST_DIR")))
            .expect("migration file");
        conn.batch_execute(&sql).await.expect(migration);
        let version: String = migration.chars().take_while(|c| *c != '_').filter(char::is_ascii_digit).collect();
        conn.batch_execute(&format!("INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}')"))
            .await
            .expect("record it");
    }
    // Filled through the previous schema.
    let filled: Vec<Old> = (0..3000).map(old_event).collect();
    for chunk in filled.chunks(500) {
        assert_eq!(store_as_previous_release(&mut conn, chunk).await, chunk.len());
    }

    // The previous release keeps writing, one event at a time, while the migrations run and
    // after them (until its revision is replaced).
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let previous_release = {
        let (url, stop, written) = (db.url.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
            let mut i = 10_000;
            while !AtomicBool::load(&stop, Ordering::SeqCst) {
                assert_eq!(store_as_previous_release(&mut conn, &[old_event(i)]).await, 1);
                written.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let applied = data::run_migrations(&db.url).await.expect("this release's migrations");
    assert!(applied.len() >= 4, "{applied:?}");
    let during = AtomicI64::load(&written, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    previous_release.await.expect("the previous release never failed a write");
    let old_total = 3000 + AtomicI64::load(&written, Ordering::SeqCst);
    assert!(AtomicI64::load(&written, Ordering::SeqCst) > during, "it kept writing after the migrations");

    let app = TestApp::spawn_on(db, &[], platform::Clock::system()).await;
    assert_eq!(app.scalar("SELECT count(*) AS n FROM event_log").await, old_total);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM event_identities").await,
        old_total,
        "every event has its identity"
    );
    let (from, to) = ("2026-10-01T00:00:00Z", "2026-12-31T00:00:00Z");
    let expected = |tenant: &str, name: &str| {
        let backlog =
            (0..3000).chain(10_000..10_000 + usize::try_from(AtomicI64::load(&written, Ordering::SeqCst)).unwrap_or(0));
        backlog.map(old_event).filter(|e| e.tenant == tenant && e.name == name).count() as i64
    };
    for (key, tenant) in [(ACME_KEY, "acme"), (GLOBEX_KEY, "globex")] {
        for name in ["signup", "checkout"] {
            assert_eq!(app.count(key, name, from, to).await, expected(tenant, name), "{tenant} {name}");
        }
    }

    // Replays of events stored by the previous release are duplicates; another payload under
    // one of their keys is refused; a new event is stored once, in the old range or a new day.
    let old = old_event(7);
    let replay = json!({"event_name": old.name, "timestamp": old.at.to_rfc3339(), "properties": old.properties});
    assert_eq!(app.post_event(Some(ACME_KEY), Some(&old.id), &replay).await.0, 200);
    let reused = json!({"event_name": old.name, "timestamp": old.at.to_rfc3339()});
    assert_eq!(app.post_event(Some(ACME_KEY), Some(&old.id), &reused).await.0, 422);
    let new = json!({"event_name": "signup", "timestamp": "2026-11-15T12:00:00Z"});
    assert_eq!(app.post_event(Some(ACME_KEY), Some("after-upgrade"), &new).await.0, 201);
    assert_eq!(app.count(ACME_KEY, "signup", from, to).await, expected("acme", "signup") + 1, "counted once");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM event_log").await, old_total + 1);

    // Once all of it is past retention, the previous release's table is dropped whole, and
    // every identity and rollup row of its events goes with it.
    let cutover = app.scalar("SELECT extract(epoch FROM cutover)::bigint AS n FROM event_log_cutover").await;
    let later = DateTime::from_timestamp(cutover, 0).expect("a time") + TimeDelta::days(4);
    let plan = data::MaintenancePlan { retention_days: Some(2), ahead_days: 1, ..Default::default() };
    let report = data::maintain(&app.pool, later, &plan).await.expect("maintenance");
    assert!(report.dropped.contains(&"events".to_owned()), "{report:?}");
    assert_eq!(report.identities_expired, old_total + 1, "{report:?}");
    for table in ["event_log", "event_identities", "event_counts_minute", "event_counts_hour", "expiry_progress"] {
        assert_eq!(app.scalar(&format!("SELECT count(*) AS n FROM {table}")).await, 0, "{table}");
    }
}
