//! `GET /metrics` on a big table: rows loaded straight into `events` with SQL, vacuumed and
//! analysed, then window counts of about 1k, 100k and 1M rows timed one request at a time.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::load;
use crate::stack::{Stack, TENANT};

/// The event name every measured window counts: one row in five.
pub const MEASURED_EVENT: &str = "checkout";

/// Names by `i % 5`: `checkout` gets 2M of 10M rows, the rest share the others.
const NAMES: [&str; 5] = [MEASURED_EVENT, "page_view", "page_view", "click", "signup"];

/// The rows span 30 days from here, evenly, in time order, names interleaved.
const SPAN_START: &str = "2026-10-01T00:00:00Z";
const SPAN_SECONDS: f64 = 30.0 * 86_400.0;

/// Rows per INSERT statement while loading.
const CHUNK: u64 = 1_000_000;

/// What loading took.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rows: u64,
    pub insert_s: f64,
    pub vacuum_s: f64,
    pub table_size: String,
}

/// Empties the table and loads `rows` events of the bench tenant.
pub fn load(stack: &Stack, rows: u64) -> anyhow::Result<Loaded> {
    stack.reset_table()?;
    let names = NAMES.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(",");
    let step_ms = SPAN_SECONDS * 1000.0 / rows as f64;
    let started = Instant::now();
    let mut lo = 0;
    while lo < rows {
        let hi = (lo + CHUNK).min(rows) - 1;
        eprintln!("bench:   rows {lo}..={hi}");
        stack.sql(&format!(
            "INSERT INTO events (tenant_id, event_id, event_name, occurred_at, properties, payload_hash) \
             SELECT '{TENANT}', 'm' || i, (ARRAY[{names}])[i % 5 + 1], \
                    timestamptz '{SPAN_START}' + i * interval '{step_ms} milliseconds', \
                    CASE WHEN i % 10 = 0 THEN '{{\"plan\": \"pro\"}}'::jsonb END, \
                    sha256(i::text::bytea) \
             FROM generate_series({lo}::bigint, {hi}::bigint) AS i"
        ))?;
        lo = hi + 1;
    }
    let insert_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    stack.sql("VACUUM ANALYZE events")?;
    stack.sql("CHECKPOINT")?;
    let vacuum_s = started.elapsed().as_secs_f64();
    let table_size = stack.sql("SELECT pg_size_pretty(pg_total_relation_size('events'))")?;
    Ok(Loaded { rows, insert_s, vacuum_s, table_size })
}

/// A window of the measured event name.
#[derive(Debug, Clone)]
pub struct Window {
    pub from: String,
    pub to: String,
}

/// Windows that hold about 1k, 100k and 1M `checkout` rows of 10M (one every 1.296 s): the
/// first starts on an hour and ends off it, as a dashboard's "last 20 minutes" would.
pub fn windows() -> Vec<Window> {
    vec![
        Window { from: "2026-10-11T00:00:00Z".into(), to: "2026-10-11T00:21:36Z".into() },
        Window { from: "2026-10-11T00:00:00Z".into(), to: "2026-10-12T12:00:00Z".into() },
        Window { from: "2026-10-05T00:00:00Z".into(), to: "2026-10-20T00:00:00Z".into() },
    ]
}

/// One timed query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub window: Window,
    pub interval: Option<&'static str>,
    /// The count straight from SQL, to check the service's answer and the window's size.
    pub sql_count: i64,
    pub timing: load::QueryTiming,
}

/// Times every window without an interval and with `interval=hour` (and `minute` on the
/// smallest, where it stays under the 10,000-bucket limit).
pub fn measure(stack: &Stack, requests: usize) -> anyhow::Result<Vec<QueryResult>> {
    let mut results = Vec::new();
    for (i, window) in windows().into_iter().enumerate() {
        let sql_count: i64 = stack
            .sql(&format!(
                "SELECT count(*) FROM events WHERE tenant_id = '{TENANT}' AND event_name = '{MEASURED_EVENT}' \
                 AND occurred_at >= '{}' AND occurred_at < '{}'",
                window.from, window.to
            ))?
            .parse()
            .context("count from psql")?;
        let intervals: &[Option<&'static str>] =
            if i == 0 { &[None, Some("hour"), Some("minute")] } else { &[None, Some("hour")] };
        for &interval in intervals {
            let mut path = format!("/metrics?event_name={MEASURED_EVENT}&from={}&to={}", window.from, window.to);
            if let Some(interval) = interval {
                path.push_str(&format!("&interval={interval}"));
            }
            eprintln!("bench:   GET {path}");
            let timing = load::time_queries(stack.metrics.port, &path, 3, requests, 20, Duration::from_secs(60))?;
            results.push(QueryResult { window: window.clone(), interval, sql_count, timing });
        }
    }
    Ok(results)
}
