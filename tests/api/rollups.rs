//! Counts come from per-minute and per-hour rollups plus the raw events at the window's edges.
//! They must stay exact: every window and every bucket equals a count of the events themselves,
//! across replays, batches, concurrent writers and deletions.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::harness::{ACME_KEY, TestApp, send};

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").expect("valid").with_timezone(&Utc)
}

fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn store(app: &TestApp, rng: &mut Lcg) -> Vec<DateTime<Utc>> {
    let span = TimeDelta::days(3).num_microseconds().expect("fits");
    let times: Vec<DateTime<Utc>> =
        (0..900).map(|_| base() + TimeDelta::microseconds(rng.next(span as u64) as i64)).collect();
    // A third through batches, a third as concurrent single events, a third as both
    // (each sent twice: the replay must not be counted).
    let item = |i: usize| json!({"event_name": "tick", "timestamp": rfc3339(times[i]), "event_id": format!("t-{i}")});
    for chunk in (0..600).collect::<Vec<_>>().chunks(150) {
        let body = json!({"events": chunk.iter().map(|&i| item(i)).collect::<Vec<Value>>()});
        let (status, _) =
            send(app.client.post(app.url("/events/batch")).header("X-API-Key", ACME_KEY).json(&body)).await;
        assert_eq!(status, 200);
    }
    let singles = (300..900).map(|i| {
        let body = item(i);
        async move { app.post_event(Some(ACME_KEY), Some(&format!("t-{i}")), &body).await.0 }
    });
    let statuses = futures_util::future::join_all(singles).await;
    assert!(statuses.iter().all(|s| *s == 200 || *s == 201), "{statuses:?}");
    times
}

fn expected_count(times: &[DateTime<Utc>], from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    times.iter().filter(|t| **t >= from && **t < to).count() as i64
}

fn expected_buckets(times: &[DateTime<Utc>], from: DateTime<Utc>, to: DateTime<Utc>, width: TimeDelta) -> Value {
    let width_us = width.num_microseconds().expect("fits");
    let align = |t: DateTime<Utc>| {
        DateTime::from_timestamp_micros(t.timestamp_micros().div_euclid(width_us) * width_us).expect("in range")
    };
    let mut buckets = BTreeMap::new();
    let mut start = align(from);
    while start < to {
        buckets.insert(start, 0i64);
        start += width;
    }
    for t in times.iter().filter(|t| **t >= from && **t < to) {
        *buckets.entry(align(*t)).or_default() += 1;
    }
    buckets
        .into_iter()
        .map(|(start, count)| json!({"start": start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), "count": count}))
        .collect()
}

async fn check_windows(app: &TestApp, times: &[DateTime<Utc>], rng: &mut Lcg, windows: usize) {
    let span = TimeDelta::days(3).num_microseconds().expect("fits") as u64;
    for _ in 0..windows {
        let from = base() - TimeDelta::hours(1) + TimeDelta::microseconds(rng.next(span) as i64);
        // Lengths from a microsecond to two days, skewed short.
        let max_len = [1_000_000u64, 120_000_000, 7_200_000_000, 172_800_000_000][rng.next(4) as usize];
        let to = from + TimeDelta::microseconds(1 + rng.next(max_len) as i64);
        let (f, t) = (rfc3339(from), rfc3339(to));
        let count = app.count(ACME_KEY, "tick", &f, &t).await;
        assert_eq!(count, expected_count(times, from, to), "window [{f}, {t})");
        for (interval, width) in
            [("minute", TimeDelta::minutes(1)), ("hour", TimeDelta::hours(1)), ("day", TimeDelta::days(1))]
        {
            if interval == "minute" && to - from > TimeDelta::days(6) {
                continue;
            }
            let (status, body) = app
                .metrics(ACME_KEY, &[("event_name", "tick"), ("from", &f), ("to", &t), ("interval", interval)])
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["buckets"], expected_buckets(times, from, to, width), "{interval} buckets of [{f}, {t})");
            assert_eq!(body["count"], count);
        }
    }
}

#[tokio::test]
async fn rollup_counts_equal_the_events_for_random_windows() {
    let app = TestApp::spawn().await;
    let mut rng = Lcg(0x5eed);
    let times = store(&app, &mut rng).await;
    check_windows(&app, &times, &mut rng, 120).await;
}

#[tokio::test]
async fn deleting_events_keeps_the_rollups_exact() {
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn().await;
    let mut rng = Lcg(0xdead);
    let mut times = store(&app, &mut rng).await;
    // Retention, or an operator's fix: delete every event of the second day.
    let (day2, day3) = (base() + TimeDelta::days(1), base() + TimeDelta::days(2));
    let mut conn = app.pool.get().await.expect("connection");
    diesel::sql_query("DELETE FROM events WHERE tenant_id = 'acme' AND occurred_at >= $1 AND occurred_at < $2")
        .bind::<diesel::sql_types::Timestamptz, _>(day2)
        .bind::<diesel::sql_types::Timestamptz, _>(day3)
        .execute(&mut conn)
        .await
        .expect("delete");
    drop(conn);
    times.retain(|t| *t < day2 || *t >= day3);
    check_windows(&app, &times, &mut rng, 60).await;
}
