//! `GET /metrics` on a large event log: rows loaded with SQL into 30 daily partitions of
//! `event_log` (the rollup triggers build the rollups) and into `event_identities`, vacuumed and
//! analysed, then window counts of about 1k, 100k and 1M rows timed one request at a time.
//!
//! The span's 30 daily partitions are made first, by the release `migrate maintain` itself
//! (`Stack::create_partitions`: a marker row per day in the default partition, which maintenance
//! moves into that day's new partition), so they are the partitions maintenance makes, settings
//! and all; then the rows are loaded straight into them. Loading everything into the default
//! partition for maintenance to move would delete and insert every row a second time (twice the
//! heap and index writes and WAL of the load, the rollup triggers fired twice), so it could only
//! be slower, and it would measure maintenance catching up on a month, which no deployment does.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};

use crate::load;
use crate::stack::{Stack, TENANT};
use crate::stats::rate;

/// The event name every measured window counts: one row in five.
pub const MEASURED_EVENT: &str = "checkout";

/// Names by `i % 5`: `checkout` gets a fifth of the rows, the rest share the others.
const NAMES: [&str; 5] = [MEASURED_EVENT, "page_view", "page_view", "click", "signup"];

/// The rows span this many whole UTC days, the last one ending where today starts.
pub const SPAN_DAYS: u64 = 30;

/// `RETENTION_DAYS` with which maintenance drops the span's first day and no other: a day
/// goes once all of it is more than `RETENTION_DAYS` + 1 days old.
pub const EXPIRY_RETENTION_DAYS: u64 = SPAN_DAYS - 2;
const SPAN_SECONDS: f64 = SPAN_DAYS as f64 * 86_400.0;

/// Rows per INSERT statement while loading.
const CHUNK: u64 = 1_000_000;

/// Disk the large point leaves free, whatever it could fill: the machine is shared.
pub const LARGE_DISK_RESERVE: u64 = 8 << 30;

/// Headroom on the measured bytes per event for WAL, vacuum and the free space of pages.
const LARGE_DISK_MARGIN: f64 = 1.25;

/// The bytes per event assumed when the small table's were not measured (identities and rollups
/// included, the upper end of the estimate).
pub const FALLBACK_BYTES_PER_EVENT: f64 = 450.0;

/// What loading took and made.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rows: u64,
    /// The span's first day and the day after its last.
    pub span: (NaiveDate, NaiveDate),
    /// Partitions `migrate maintain` created for the span (the others already existed).
    pub partitions_created: usize,
    pub insert_s: f64,
    pub vacuum_s: f64,
    /// `event_log`: every partition with its indexes.
    pub log_bytes: u64,
    /// `event_identities` with its indexes.
    pub identities_bytes: u64,
    /// `event_counts_minute` and `event_counts_hour` with their indexes.
    pub rollup_bytes: u64,
}

impl Loaded {
    pub fn total_bytes(&self) -> u64 {
        self.log_bytes + self.identities_bytes + self.rollup_bytes
    }

    pub fn bytes_per_event(&self) -> f64 {
        self.total_bytes() as f64 / self.rows.max(1) as f64
    }
}

/// The span of `SPAN_DAYS` whole days that ends where `today` starts.
pub fn span(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    (today - Days::new(SPAN_DAYS), today)
}

/// The name `migrate maintain` gives a day's partition.
pub fn partition_name(day: NaiveDate) -> String {
    format!("event_log_p{}", day.format("%Y%m%d"))
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc())
}

/// The days of `[from, to)` that have no partition among `existing`.
pub fn missing_days(from: NaiveDate, to: NaiveDate, existing: &[String]) -> Vec<NaiveDate> {
    from.iter_days().take_while(|d| *d < to).filter(|d| !existing.contains(&partition_name(*d))).collect()
}

/// Empties the tables and loads `rows` events of the bench tenant, spread evenly over the
/// span starting `span.0`, into `event_log` and `event_identities`.
pub fn load(stack: &Stack, rows: u64, span_from: NaiveDate) -> anyhow::Result<Loaded> {
    stack.reset_table()?;
    let span = (span_from, span_from + Days::new(SPAN_DAYS));
    let missing = missing_days(span.0, span.1, &crate::stack::partitions(&stack.db_url)?);
    let maintained = stack.create_partitions(&missing).context("creating the span's partitions")?;
    eprintln!(
        "bench:   {} partitions for {} … {} ({} created by migrate maintain{})",
        SPAN_DAYS,
        partition_name(span.0),
        partition_name(span.1 - Days::new(1)),
        missing.len(),
        maintained.map_or_else(String::new, |m| format!(" in {} ms", m.elapsed.as_millis()))
    );
    let names = NAMES.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(",");
    let step_us = SPAN_SECONDS * 1e6 / rows as f64;
    let start = start_of(span.0).to_rfc3339();
    let started = Instant::now();
    let mut lo = 0;
    while lo < rows {
        let hi = (lo + CHUNK).min(rows) - 1;
        // One statement, as the service's insert: the identities claimed, the events written
        // (their day's partition; the statement's rollup triggers fire once per chunk).
        stack.sql(&format!(
            "WITH g AS MATERIALIZED (
                 SELECT i, timestamptz '{start}' + i * interval '{step_us} microseconds' AS occurred_at,
                        sha256(i::text::bytea) AS payload_hash
                 FROM generate_series({lo}::bigint, {hi}::bigint) AS i
             ), claimed AS (
                 INSERT INTO event_identities (tenant_id, event_id, occurred_at, payload_hash)
                 SELECT '{TENANT}', 'm' || i, occurred_at, payload_hash FROM g
             )
             INSERT INTO event_log (tenant_id, event_id, event_name, occurred_at, properties, payload_hash)
             SELECT '{TENANT}', 'm' || i, (ARRAY[{names}])[i % 5 + 1], occurred_at,
                    CASE WHEN i % 10 = 0 THEN '{{\"plan\": \"pro\"}}'::jsonb END, payload_hash
             FROM g"
        ))?;
        lo = hi + 1;
        let elapsed = started.elapsed().as_secs_f64();
        let per_s = lo as f64 / elapsed.max(1e-3);
        eprintln!(
            "bench:   loaded {} of {} rows ({:.0}%), {} rows/s, about {:.1} min left",
            rate(lo as f64),
            rate(rows as f64),
            lo as f64 / rows as f64 * 100.0,
            rate(per_s),
            (rows - lo) as f64 / per_s / 60.0
        );
    }
    let insert_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    eprintln!("bench:   VACUUM ANALYZE and CHECKPOINT");
    stack.sql("VACUUM ANALYZE event_log")?;
    stack.sql("VACUUM ANALYZE event_identities")?;
    stack.sql("VACUUM ANALYZE event_counts_minute, event_counts_hour")?;
    stack.sql("CHECKPOINT")?;
    let vacuum_s = started.elapsed().as_secs_f64();
    let sizes = stack.sql(
        "SELECT (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits \
                 WHERE inhparent = 'event_log'::regclass), \
                pg_total_relation_size('event_identities'), \
                pg_total_relation_size('event_counts_minute') + pg_total_relation_size('event_counts_hour')",
    )?;
    let sizes: Vec<u64> = sizes.split('|').map(|v| v.trim().parse().unwrap_or(0)).collect();
    let [log_bytes, identities_bytes, rollup_bytes] = sizes[..] else { bail!("table sizes from psql: {sizes:?}") };
    Ok(Loaded {
        rows,
        span,
        partitions_created: missing.len(),
        insert_s,
        vacuum_s,
        log_bytes,
        identities_bytes,
        rollup_bytes,
    })
}

/// A window of the measured event name.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The window's intended size, in `checkout` rows.
    pub target: u64,
    /// Both edges on whole minutes, hours or days (the coarsest that keeps about the target),
    /// or both off any bucket edge.
    pub aligned: bool,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The `interval` values to time it with (`None`: a total).
    pub intervals: Vec<Option<&'static str>>,
}

impl Window {
    pub fn start_text(&self) -> String {
        self.from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    pub fn end_text(&self) -> String {
        self.to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

/// The window sizes measured, in `checkout` rows.
const TARGETS: [u64; 3] = [1_000, 100_000, 1_000_000];

/// Most buckets one `/metrics` answer may hold.
const MAX_BUCKETS: i64 = 10_000;

/// Windows that hold about 1k, 100k and 1M `checkout` rows when `rows` events are spread over
/// the span starting at `span_from`: for each, one with aligned edges starting on a day, and one
/// with both edges off any minute (partial buckets at both ends). A window that would not fit
/// the span is cut to 24 days (the smaller tables have fewer than 1M `checkout` rows).
pub fn windows(rows: u64, span_from: DateTime<Utc>) -> Vec<Window> {
    let per_second = rows as f64 / NAMES.len() as f64 / SPAN_SECONDS;
    let start = span_from + TimeDelta::days(5);
    let longest = TimeDelta::days(24);
    let odd_offset = TimeDelta::milliseconds(((3 * 60 + 7) * 60 + 13) * 1000 + 500);
    let mut out: Vec<Window> = Vec::new();
    for target in TARGETS {
        let exact = TimeDelta::milliseconds((target as f64 / per_second * 1000.0).round() as i64).min(longest);
        let unit = if exact >= TimeDelta::days(2) {
            TimeDelta::days(1)
        } else if exact >= TimeDelta::hours(2) {
            TimeDelta::hours(1)
        } else {
            TimeDelta::minutes(1)
        };
        let units = (exact.num_milliseconds() as f64 / unit.num_milliseconds() as f64).round().max(1.0) as i32;
        let aligned_len = unit * units;
        let odd_from = start + odd_offset;
        for (aligned, from, to) in [(true, start, start + aligned_len), (false, odd_from, odd_from + exact)] {
            let minutes = (to - from).num_minutes() + 2;
            let mut intervals = vec![None, Some("hour")];
            if minutes <= MAX_BUCKETS {
                intervals.push(Some("minute"));
            }
            let window = Window { target, aligned, from, to, intervals };
            if !out.iter().any(|w| w.from == window.from && w.to == window.to) {
                out.push(window);
            }
        }
    }
    out
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

impl QueryResult {
    /// Whether the `/metrics` target judges this query: every window in total and by the hour,
    /// and by the minute only the ~1k windows (as the runs before partitioning did). Minute
    /// buckets over the larger windows are thousands of buckets per answer: timed and reported,
    /// not judged.
    pub fn judged(&self) -> bool {
        self.interval != Some("minute") || self.window.target == TARGETS[0]
    }

    /// How many buckets the answer holds (1 for a total).
    pub fn buckets(&self) -> i64 {
        let seconds: i64 = match self.interval {
            None => return 1,
            Some("minute") => 60,
            Some("hour") => 3_600,
            Some(_) => 86_400,
        };
        let width = seconds * 1_000_000;
        let first = self.window.from.timestamp_micros().div_euclid(width);
        let last = (self.window.to.timestamp_micros() - 1).div_euclid(width);
        last - first + 1
    }
}

/// Times every window of `windows(rows, span_from)`, with each of its intervals.
pub fn measure(stack: &Stack, rows: u64, span_from: NaiveDate, requests: usize) -> anyhow::Result<Vec<QueryResult>> {
    let mut results = Vec::new();
    for window in windows(rows, start_of(span_from)) {
        let (from, to) = (window.start_text(), window.end_text());
        let sql_count: i64 = stack
            .sql(&format!(
                "SELECT count(*) FROM event_log WHERE tenant_id = '{TENANT}' AND event_name = '{MEASURED_EVENT}' \
                 AND occurred_at >= '{from}' AND occurred_at < '{to}'"
            ))?
            .parse()
            .context("count from psql")?;
        for &interval in &window.intervals {
            let mut path = format!("/metrics?event_name={MEASURED_EVENT}&from={from}&to={to}");
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

/// Free bytes on the filesystem of PostgreSQL's data directory.
pub fn free_disk(stack: &Stack) -> anyhow::Result<u64> {
    let dir = stack.sql("SHOW data_directory")?;
    let out = std::process::Command::new("df").args(["-B1", "--output=avail", &dir]).output().context("running df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).and_then(|l| l.trim().parse().ok()).with_context(|| format!("df printed {text:?}"))
}

/// How many rows the large point loads: `requested`, or, when that does not fit in `free`
/// bytes (keeping `LARGE_DISK_RESERVE` free, `LARGE_DISK_MARGIN` on `bytes_per_event`), the
/// largest round number that does (a multiple of 10M, or of 1M below that). `None` when that is
/// not more than `small` (the table already measured). The text says why.
pub fn large_rows(requested: u64, free: u64, bytes_per_event: f64, small: u64) -> (Option<u64>, String) {
    let usable = free.saturating_sub(LARGE_DISK_RESERVE);
    let fits = (usable as f64 / (bytes_per_event * LARGE_DISK_MARGIN)) as u64;
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64);
    let basis = format!(
        "{} free on PostgreSQL's disk with the tables empty; {:.0} bytes per event (the small table's, with \
         identities and rollups) × {LARGE_DISK_MARGIN} headroom, keeping {} free",
        gib(free),
        bytes_per_event,
        gib(LARGE_DISK_RESERVE)
    );
    if fits >= requested {
        return (Some(requested), format!("{} rows as requested ({basis})", rate(requested as f64)));
    }
    let step = if fits >= 10_000_000 { 10_000_000 } else { 1_000_000 };
    let rounded = fits / step * step;
    if rounded <= small {
        return (
            None,
            format!(
                "not measured: {} rows requested, but at most {} fit ({basis}), no more than the {}-row table",
                rate(requested as f64),
                rate(fits as f64),
                rate(small as f64)
            ),
        );
    }
    (
        Some(rounded),
        format!("{} rows, the most that fit, of {} requested ({basis})", rate(rounded as f64), rate(requested as f64)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn the_span_is_thirty_days_before_today() {
        assert_eq!(span(day("2026-12-02")), (day("2026-11-02"), day("2026-12-02")));
        assert_eq!(partition_name(day("2026-11-02")), "event_log_p20261102");
    }

    #[test]
    fn only_missing_partitions_are_created() {
        let existing = vec!["event_log_default".to_owned(), "event_log_p20261201".to_owned()];
        let missing = missing_days(day("2026-11-29"), day("2026-12-02"), &existing);
        assert_eq!(missing, vec![day("2026-11-29"), day("2026-11-30")]);
    }

    /// `checkout` rows in a window, as the loader spreads them (every fifth row from row 0, row
    /// `i` at `i` steps after the span's start).
    fn rows_in(rows: u64, span_from: DateTime<Utc>, w: &Window) -> u64 {
        let checkout_step_us = SPAN_SECONDS * 1e6 / rows as f64 * 5.0;
        let first_at_or_after = |t: DateTime<Utc>| {
            ((t - span_from).num_microseconds().expect("in range") as f64 / checkout_step_us).ceil() as u64
        };
        first_at_or_after(w.to) - first_at_or_after(w.from)
    }

    #[test]
    fn windows_hold_about_their_target() {
        let span_from = start_of(day("2026-11-02"));
        for rows in [10_000_000, 100_000_000] {
            let windows = windows(rows, span_from);
            assert_eq!(windows.len(), 6, "three sizes, aligned and odd");
            for w in &windows {
                let held = rows_in(rows, span_from, w);
                let ratio = held as f64 / w.target as f64;
                assert!((0.5..=1.5).contains(&ratio), "{rows} rows: {w:?} holds about {held}");
                assert!(w.from >= span_from && w.to <= span_from + TimeDelta::days(30), "{w:?}");
                assert!(w.intervals.contains(&None) && w.intervals.contains(&Some("hour")));
                let minute_buckets = (w.to - w.from).num_minutes() + 2;
                assert_eq!(w.intervals.contains(&Some("minute")), minute_buckets <= MAX_BUCKETS, "{w:?}");
                if w.aligned {
                    assert_eq!(w.from.timestamp() % 86_400, 0);
                    assert_eq!(w.to.timestamp() % 60, 0, "{w:?}");
                } else {
                    assert_ne!(w.from.timestamp() % 60, 0);
                    assert!(w.from.timestamp_subsec_millis() > 0 || w.to.timestamp() % 60 != 0, "{w:?}");
                }
            }
        }
        let ten = windows(10_000_000, span_from);
        assert_eq!(ten[0].to - ten[0].from, TimeDelta::minutes(22), "1k of 10M rows: 21.6 minutes");
        assert_eq!(ten[0].start_text(), "2026-11-07T00:00:00Z");
        assert_eq!(ten[1].start_text(), "2026-11-07T03:07:13.500Z");
        assert_eq!(ten[4].to - ten[4].from, TimeDelta::days(15), "1M of 10M rows: 15 days");
    }

    #[test]
    fn small_tables_cut_the_largest_windows_to_the_span() {
        let span_from = start_of(day("2026-11-02"));
        let windows = windows(100_000, span_from);
        assert!(windows.iter().all(|w| w.to - w.from <= TimeDelta::days(24)));
        assert_eq!(windows.len(), 4, "the 1M windows equal the 100k ones once both are cut: {windows:?}");
        assert_eq!(super::windows(1_000_000, span_from).len(), 6);
    }

    #[test]
    fn minute_buckets_are_judged_on_the_smallest_windows_only() {
        let windows = windows(10_000_000, start_of(day("2026-11-02")));
        let query = |w: &Window, interval| QueryResult {
            window: w.clone(),
            interval,
            sql_count: 0,
            timing: load::QueryTiming {
                requests: 0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
                count: None,
                errors: 0,
                error_sample: None,
            },
        };
        assert!(query(&windows[0], Some("minute")).judged() && query(&windows[1], Some("minute")).judged());
        assert!(!query(&windows[2], Some("minute")).judged(), "36 hours of minutes");
        assert!(query(&windows[2], Some("hour")).judged() && query(&windows[4], None).judged());
        assert_eq!(query(&windows[0], Some("minute")).buckets(), 22);
        // 03:07:13.5 to 03:28:49.5: partial buckets at both ends.
        assert_eq!(query(&windows[1], Some("minute")).buckets(), 22);
        assert_eq!(query(&windows[2], Some("hour")).buckets(), 36);
        assert_eq!(query(&windows[2], None).buckets(), 1);
    }

    #[test]
    fn the_large_point_fits_the_disk() {
        let gib = 1u64 << 30;
        let (rows, why) = large_rows(100_000_000, 200 * gib, 400.0, 10_000_000);
        assert_eq!(rows, Some(100_000_000), "{why}");
        let (rows, why) = large_rows(100_000_000, 38 * gib, 400.0, 10_000_000);
        // (38 - 8) GiB / 500 bytes = 64.4M
        assert_eq!(rows, Some(60_000_000), "{why}");
        assert!(why.contains("the most that fit"), "{why}");
        let (rows, why) = large_rows(100_000_000, 10 * gib, 400.0, 10_000_000);
        assert_eq!(rows, None);
        assert!(why.starts_with("not measured"), "{why}");
    }
}
