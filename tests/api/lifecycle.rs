//! The data lifecycle: events stored in their day's partition (or the default partition, from
//! which maintenance moves them), identities unique across partitions, partition rollover at
//! midnight under load, and retention dropping whole days while ingest and counting go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::json;

use crate::harness::{ACME_KEY, TestApp, TestDatabase};

fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn maintain(app: &TestApp, now: DateTime<Utc>, retention_days: Option<u32>) -> data::MaintenanceReport {
    maintain_ahead(app, now, retention_days, 3).await
}

async fn maintain_ahead(
    app: &TestApp,
    now: DateTime<Utc>,
    retention_days: Option<u32>,
    ahead_days: u32,
) -> data::MaintenanceReport {
    data::maintain(&app.pool, now, &data::MaintenancePlan { retention_days, ahead_days, ..Default::default() })
        .await
        .expect("maintenance")
}

async fn in_default(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) AS n FROM event_log_default").await
}

async fn partition_exists(app: &TestApp, day: DateTime<Utc>) -> bool {
    let name = data::partition_name(day.date_naive());
    app.scalar(&format!("SELECT count(*) AS n FROM pg_class WHERE relname = '{name}'")).await == 1
}

#[tokio::test]
async fn events_land_in_their_day_and_strays_leave_the_default_partition() {
    let app = TestApp::spawn_on(TestDatabase::create_past_cutover().await, &[], platform::Clock::system()).await;
    let now = Utc::now();
    // No partition yet for any day: everything lands in the default partition, nothing refused.
    let times = [now - TimeDelta::days(2), now - TimeDelta::hours(1), now];
    for (i, at) in times.iter().enumerate() {
        let body = json!({"event_name": "signup", "timestamp": rfc3339(*at)});
        let (status, reply) = app.post_event(Some(ACME_KEY), Some(&format!("e-{i}")), &body).await;
        assert_eq!(status, 201, "{reply}");
    }
    let window = (rfc3339(now - TimeDelta::days(3)), rfc3339(now + TimeDelta::minutes(1)));
    assert_eq!(app.count(ACME_KEY, "signup", &window.0, &window.1).await, 3);
    assert_eq!(in_default(&app).await, 3);

    let report = maintain(&app, now, None).await;
    assert_eq!(report.moved_from_default, 3, "{report:?}");
    assert!(report.created.contains(&data::partition_name((now - TimeDelta::days(2)).date_naive())), "{report:?}");
    for day in 0..=3 {
        assert!(partition_exists(&app, now + TimeDelta::days(day)).await, "partitions ahead");
    }
    assert_eq!(in_default(&app).await, 0);
    assert_eq!(app.count(ACME_KEY, "signup", &window.0, &window.1).await, 3, "moving rows changes no count");
    let misplaced = app
        .scalar(
            "SELECT count(*) AS n FROM event_log \
             WHERE tableoid::regclass::text <> 'event_log_p' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYYMMDD')",
        )
        .await;
    assert_eq!(misplaced, 0, "every event in its own day's partition");

    // Identity holds across partitions: a replay is a duplicate; the same key at another day's
    // time (another partition) is a reused key.
    let replay = json!({"event_name": "signup", "timestamp": rfc3339(times[0])});
    assert_eq!(app.post_event(Some(ACME_KEY), Some("e-0"), &replay).await.0, 200);
    let moved = json!({"event_name": "signup", "timestamp": rfc3339(now)});
    assert_eq!(app.post_event(Some(ACME_KEY), Some("e-0"), &moved).await.0, 422);
    assert_eq!(app.scalar("SELECT count(*) AS n FROM event_log").await, 3);

    // Idempotent.
    let again = maintain(&app, now, None).await;
    assert!(again.created.is_empty() && again.moved_from_default == 0, "{again:?}");
}

/// Eight clients send events stamped with the app's clock across a UTC midnight for which no
/// partition exists yet, while maintenance creates it and moves rows out of the default
/// partition: every event is answered 201 and counted once.
#[tokio::test]
async fn midnight_rollover_under_concurrent_ingest_loses_nothing() {
    let real_now = Utc::now();
    let midnight = (real_now + TimeDelta::days(1)).duration_trunc(TimeDelta::days(1)).expect("midnight");
    // The app's clock runs from three seconds before that midnight.
    let ahead = midnight - TimeDelta::seconds(3) - real_now;
    let clock = platform::Clock::ahead(ahead);
    let app = Arc::new(TestApp::spawn_on(TestDatabase::create_past_cutover().await, &[], clock).await);
    let sent = Arc::new(AtomicI64::new(0));
    let stop_at = midnight + TimeDelta::seconds(3);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (app, sent) = (app.clone(), sent.clone());
            tokio::spawn(async move {
                let mut i = 0;
                loop {
                    let at = clock.now();
                    if at >= stop_at {
                        return;
                    }
                    let body = json!({"event_name": "tick", "timestamp": rfc3339(at)});
                    let (status, reply) = app.post_event(Some(ACME_KEY), Some(&format!("w{w}-{i}")), &body).await;
                    assert_eq!(status, 201, "{reply}");
                    sent.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            })
        })
        .collect();
    // Maintenance runs while the clients write, once on each side of midnight, keeping no day
    // ahead: the first run makes today's partition only, so the first events after midnight
    // land in the default partition until the second run makes theirs and moves them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = maintain_ahead(&app, clock.now(), None, 0).await;
    assert!(before.moved_from_default > 0, "{before:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = maintain_ahead(&app, clock.now(), None, 0).await;
    for writer in writers {
        writer.await.expect("writer");
    }
    let last = maintain_ahead(&app, clock.now(), None, 0).await;
    let created: Vec<String> = [before, after, last].into_iter().flat_map(|r| r.created).collect();
    assert!(created.contains(&data::partition_name(midnight.date_naive())), "{created:?}");

    let total = sent.load(Ordering::SeqCst);
    assert!(total > 50, "the clients sent {total} events");
    let (from, to) = (rfc3339(midnight - TimeDelta::hours(1)), rfc3339(midnight + TimeDelta::hours(1)));
    assert_eq!(app.count(ACME_KEY, "tick", &from, &to).await, total);
    assert_eq!(app.scalar("SELECT count(*) AS n FROM event_log").await, total);
    assert_eq!(app.scalar("SELECT count(*) AS n FROM event_identities").await, total);
    assert_eq!(in_default(&app).await, 0);
    let per_day = app
        .scalar(&format!(
            "SELECT count(DISTINCT tableoid) AS n FROM event_log WHERE occurred_at >= '{}' AND occurred_at < '{}'",
            rfc3339(midnight - TimeDelta::seconds(3)),
            rfc3339(midnight + TimeDelta::seconds(3))
        ))
        .await;
    assert_eq!(per_day, 2, "the events before and after midnight are in two partitions");
}

/// Retention of two days. Events are stored on two days; then the clock moves three days on:
/// maintenance drops the older day whole while clients keep sending and counting, its
/// identities and rollups go with it, and what is past the horizon is refused, never
/// miscounted.
#[tokio::test]
async fn retention_drops_whole_days_while_ingest_and_counts_go_on() {
    let vars = [("RETENTION_DAYS", "2")];
    let db = TestDatabase::create_past_cutover().await;
    let url = db.url.clone();
    let today = Utc::now();
    let yesterday = today - TimeDelta::days(1);
    let app = TestApp::spawn_on(db, &vars, platform::Clock::system()).await;
    for (i, at) in [yesterday, yesterday, today].iter().enumerate() {
        let body = json!({"event_name": "signup", "timestamp": rfc3339(*at)});
        assert_eq!(app.post_event(Some(ACME_KEY), Some(&format!("old-{i}")), &body).await.0, 201);
    }
    maintain(&app, today, Some(2)).await;
    assert!(partition_exists(&app, yesterday).await);

    // Three days later, by the clock of a second server on the same database.
    let ahead = TimeDelta::days(3);
    let clock = platform::Clock::ahead(ahead);
    let later = Arc::new(TestApp::spawn_with_clock(&url, &vars, clock).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicI64::new(0));
    let writer = {
        let (app, stop, sent) = (later.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"event_name": "signup", "timestamp": rfc3339(clock.now())});
                assert_eq!(app.post_event(Some(ACME_KEY), Some(&format!("new-{i}")), &body).await.0, 201);
                sent.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    let counter = {
        let (app, stop, sent) = (later.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            let (from, to) = (rfc3339(clock.now() - TimeDelta::hours(1)), rfc3339(clock.now() + TimeDelta::hours(1)));
            while !stop.load(Ordering::SeqCst) {
                let floor = sent.load(Ordering::SeqCst);
                let counted = app.count(ACME_KEY, "signup", &from, &to).await;
                assert!(counted >= floor && counted <= sent.load(Ordering::SeqCst) + 8, "{counted} vs {floor}");
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = maintain(&later, clock.now(), Some(2)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    counter.await.expect("counter");

    assert_eq!(report.dropped, vec![data::partition_name(yesterday.date_naive())], "{report:?}");
    assert!(!partition_exists(&later, yesterday).await);
    assert!(partition_exists(&later, today).await, "a day still within the margin is kept");
    assert_eq!(report.identities_expired, 2, "{report:?}");
    assert_eq!(
        later.scalar("SELECT count(*) AS n FROM event_identities WHERE event_id LIKE 'old-%'").await,
        1,
        "only today's old event keeps its identity"
    );
    assert!(report.rollup_rows_expired >= 2, "{report:?}");
    let start_of_today = today.duration_trunc(TimeDelta::days(1)).expect("midnight");
    assert_eq!(
        later
            .scalar(&format!(
                "SELECT count(*) AS n FROM event_counts_minute WHERE bucket < '{}'",
                rfc3339(start_of_today)
            ))
            .await,
        0
    );
    let new = sent.load(Ordering::SeqCst);
    let (from, to) = (rfc3339(clock.now() - TimeDelta::hours(1)), rfc3339(clock.now() + TimeDelta::hours(1)));
    assert_eq!(later.count(ACME_KEY, "signup", &from, &to).await, new);

    // Past the horizon: refused, naming the limit; a count reaching there is refused too.
    let old = json!({"event_name": "signup", "timestamp": rfc3339(today)});
    let (status, problem) = later.post_event(Some(ACME_KEY), Some("late"), &old).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["errors"][0]["message"].as_str().is_some_and(|m| m.contains("RETENTION_DAYS")), "{problem}");
    let (status, problem) =
        later.metrics(ACME_KEY, &[("event_name", "signup"), ("from", &rfc3339(today)), ("to", &to)]).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "from");
    // A replay of a dropped day's event: its identity is gone with it, and it is refused for
    // its age, so it is never stored a second time.
    let replay = json!({"event_name": "signup", "timestamp": rfc3339(yesterday)});
    assert_eq!(later.post_event(Some(ACME_KEY), Some("old-0"), &replay).await.0, 400);
}

/// Dropping a day needs the log's exclusive lock for a moment, attaching one the default
/// partition's. While a long transaction reads the log, maintenance gives up on both after
/// short waits (inserts go on meanwhile) and says so; the next run does them. A day left
/// detached by a run that stopped before dropping it is dropped by the next run, with its
/// identities.
#[tokio::test]
async fn a_busy_log_defers_the_drop_and_a_half_done_drop_is_finished() {
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};

    let db = TestDatabase::create_past_cutover().await;
    let url = db.url.clone();
    let today = Utc::now();
    let yesterday = today - TimeDelta::days(1);
    let app = TestApp::spawn_on(db, &[], platform::Clock::system()).await;
    for (i, at) in [yesterday, yesterday, today].iter().enumerate() {
        let body = json!({"event_name": "signup", "timestamp": rfc3339(*at)});
        assert_eq!(app.post_event(Some(ACME_KEY), Some(&format!("old-{i}")), &body).await.0, 201);
    }
    maintain_ahead(&app, today, Some(2), 5).await;
    let expired = data::partition_name(yesterday.date_naive());
    let later = today + TimeDelta::days(3);
    // Three days ahead of `later`: one day more than exists.
    let ahead = data::partition_name((later + TimeDelta::days(3)).date_naive());

    // A reader holds the log for the whole run.
    let mut reader = diesel_async::AsyncPgConnection::establish(&url).await.expect("connect");
    reader.batch_execute("BEGIN; SELECT count(*) FROM event_log;").await.expect("read");
    let run = {
        let pool = app.pool.clone();
        tokio::spawn(async move {
            let plan = data::MaintenancePlan { retention_days: Some(2), ahead_days: 3, ..Default::default() };
            data::maintain(&pool, later, &plan).await.expect("maintenance")
        })
    };
    let mut sent = 0;
    while !run.is_finished() {
        let body = json!({"event_name": "signup", "timestamp": rfc3339(Utc::now())});
        assert_eq!(app.post_event(Some(ACME_KEY), Some(&format!("during-{sent}")), &body).await.0, 201);
        sent += 1;
    }
    let report = run.await.expect("run");
    assert_eq!(report.deferred, vec![ahead.clone(), expired.clone()], "{report:?}");
    assert!(report.dropped.is_empty() && report.created.is_empty(), "{report:?}");
    assert!(sent > 1, "ingest went on while maintenance waited ({sent} events)");
    assert!(partition_exists(&app, yesterday).await);
    assert_eq!(report.identities_expired, 0, "the day's identities stay with it: {report:?}");
    reader.batch_execute("COMMIT").await.expect("commit");

    // A run that stopped between detaching and dropping, having recorded where its identity
    // expiry would go on (the first page: these days hold a page each).
    reader
        .batch_execute(&format!(
            "ALTER TABLE event_log DETACH PARTITION {expired};
             INSERT INTO expiry_progress (table_name, next_page) VALUES ('{expired}', 0);"
        ))
        .await
        .expect("detach");
    let report = maintain(&app, later, Some(2)).await;
    assert_eq!(report.created, vec![ahead], "{report:?}");
    assert_eq!(report.dropped, vec![expired], "{report:?}");
    assert!(report.deferred.is_empty(), "{report:?}");
    assert!(!partition_exists(&app, yesterday).await);
    assert_eq!(report.identities_expired, 2, "{report:?}");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM expiry_progress").await, 0, "the progress went with the table");
    let window = (rfc3339(today - TimeDelta::hours(1)), rfc3339(today + TimeDelta::hours(1)));
    assert_eq!(app.count(ACME_KEY, "signup", &window.0, &window.1).await, 1 + sent, "today's events untouched");
}
