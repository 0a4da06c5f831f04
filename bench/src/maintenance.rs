//! Maintenance under load: single-event ingest at 16 clients while the release
//! `migrate maintain` runs in the middle of the measured interval with a plan that creates one
//! partition and drops another, as its hourly schedule does on a live deployment. The requests
//! that overlap its run are set against the other requests of the same interval.
//!
//! Set-up, before the load: a daily partition for a day `EXPIRED_DAY_AGE` days ago holding
//! `EXPIRED_ROWS` events (with their identities and rollups), so that `RETENTION_DAYS` drops it
//! and expires what belongs to it; and no partition `MAINTAIN_AHEAD_DAYS` days ahead, one more
//! than the steady state's `PARTITION_AHEAD_DAYS` (14, the default), so that it creates one.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{Days, Utc};
use hdrhistogram::Histogram;

use crate::load::{self, LoadSpec, Measured, Timed, Workload};
use crate::metrics::partition_name;
use crate::stack::{self, Maintained, Stack, TENANT};

/// The concurrency of the point.
pub const CLIENTS: usize = 16;
/// `RETENTION_DAYS` of the maintenance run: days wholly more than 31 days old are dropped.
pub const RETENTION_DAYS: u32 = 30;
/// The expired day's age: well past `RETENTION_DAYS` + 1.
pub const EXPIRED_DAY_AGE: u64 = 40;
/// Events stored in the expired day.
pub const EXPIRED_ROWS: u64 = 5_000;
/// `PARTITION_AHEAD_DAYS` of the maintenance run: one more than the steady state's.
pub const MAINTAIN_AHEAD_DAYS: u32 = 15;

/// Latency of one part of the measured interval.
#[derive(Debug, Clone, Copy, Default)]
pub struct Split {
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One run of the point.
#[derive(Debug, Clone)]
pub struct MaintenanceRun {
    /// The whole measured interval.
    pub measured: Measured,
    /// Requests that overlapped the maintenance run.
    pub during: Split,
    /// The other requests of the interval.
    pub steady: Split,
    /// p99s of the interval's other windows as long as the run (see `window_p99s`).
    pub windows: Windows,
    /// When maintenance started, after the measured interval opened.
    pub started_after: Duration,
    pub maintained: Maintained,
}

impl MaintenanceRun {
    /// p99 while maintenance ran ÷ steady p99.
    pub fn ratio(&self) -> f64 {
        self.during.p99_ms / self.steady.p99_ms
    }
}

/// The p99 of every window of the interval as long as the maintenance run and clear of it:
/// how far p99 over a few hundred requests strays without maintenance, beside which the run's
/// own p99 is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Windows {
    pub count: usize,
    pub median_p99_ms: f64,
    pub p90_p99_ms: f64,
}

/// The windows of `timeline`, back to back from its first request, `to_us - from_us` long,
/// that do not overlap `[from_us, to_us]` (those with fewer than 100 requests are left out).
pub fn window_p99s(timeline: &[Timed], from_us: u64, to_us: u64) -> Windows {
    let width = (to_us - from_us).max(1);
    let first = timeline.iter().map(|r| r.start_us).min().unwrap_or(0);
    let last = timeline.iter().map(|r| r.end_us).max().unwrap_or(0);
    let mut p99s: Vec<f64> = (0..)
        .map(|i| first + i * width)
        .take_while(|start| start + width <= last)
        .filter(|start| start + width < from_us || *start > to_us)
        .map(|start| split(timeline, start, start + width).0)
        .filter(|window| window.requests >= 100)
        .map(|window| window.p99_ms)
        .collect();
    p99s.sort_by(f64::total_cmp);
    let at =
        |q: f64| p99s.get(((p99s.len().saturating_sub(1)) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN);
    Windows { count: p99s.len(), median_p99_ms: at(0.5), p90_p99_ms: at(0.9) }
}

/// Splits the measured requests into those overlapping `[from_us, to_us]` and the rest.
pub fn split(timeline: &[Timed], from_us: u64, to_us: u64) -> (Split, Split) {
    let summarise = |overlapping: bool| {
        let mut histogram = load::new_histogram();
        let mut errors = 0;
        for r in timeline.iter().filter(|r| (r.start_us <= to_us && r.end_us >= from_us) == overlapping) {
            if r.ok {
                histogram.saturating_record((r.end_us - r.start_us).max(1));
            } else {
                errors += 1;
            }
        }
        let ms =
            |h: &Histogram<u64>, q: f64| if h.is_empty() { f64::NAN } else { h.value_at_quantile(q) as f64 / 1000.0 };
        Split {
            requests: histogram.len(),
            errors,
            p50_ms: ms(&histogram, 0.5),
            p99_ms: ms(&histogram, 0.99),
            max_ms: ms(&histogram, 1.0),
        }
    };
    (summarise(true), summarise(false))
}

/// The set-up (see the module's doc), on tables just emptied.
fn prepare(stack: &Stack) -> anyhow::Result<()> {
    let today = Utc::now().date_naive();
    let ahead = partition_name(today + Days::new(MAINTAIN_AHEAD_DAYS.into()));
    let expired = today - Days::new(EXPIRED_DAY_AGE);
    stack.sql(&format!("DROP TABLE IF EXISTS {ahead}")).context("dropping the partition maintenance is to create")?;
    if !stack::partitions(&stack.db_url)?.contains(&partition_name(expired)) {
        stack.create_partitions(&[expired]).context("creating the expired day's partition")?;
    }
    let step_us = 86_400.0 * 1e6 / EXPIRED_ROWS as f64;
    stack.sql(&format!(
        "WITH g AS MATERIALIZED (
             SELECT i, timestamptz '{}' + i * interval '{step_us} microseconds' AS occurred_at,
                    sha256(i::text::bytea) AS payload_hash
             FROM generate_series(0, {EXPIRED_ROWS} - 1) AS i
         ), claimed AS (
             INSERT INTO event_identities (tenant_id, event_id, occurred_at, payload_hash)
             SELECT '{TENANT}', 'old-' || i, occurred_at, payload_hash FROM g
         )
         INSERT INTO event_log (tenant_id, event_id, event_name, occurred_at, payload_hash)
         SELECT '{TENANT}', 'old-' || i, 'old_event', occurred_at, payload_hash FROM g",
        expired.and_hms_opt(0, 0, 0).map(|t| t.and_utc().to_rfc3339()).unwrap_or_default()
    ))?;
    stack.sql("CHECKPOINT")?;
    Ok(())
}

/// One run: set-up, then the load with maintenance in the middle of its measured interval.
pub fn point(stack: &Stack, warmup: Duration, duration: Duration, tag: String) -> anyhow::Result<MaintenanceRun> {
    stack.reset_table()?;
    prepare(stack)?;
    let spec = LoadSpec {
        port: stack.events.port,
        service_pid: stack.events.pid(),
        postmaster: stack.postmaster,
        clients: CLIENTS,
        warmup,
        duration,
        workload: Workload::Single,
        tag,
        timestamp: crate::now_micros(),
        timeline: true,
    };
    let (opened_tx, opened_rx) = mpsc::channel::<Instant>();
    let (bin_dir, url) = (stack.bin_dir.clone(), stack.db_url.clone());
    let maintainer = std::thread::spawn(move || -> anyhow::Result<(Instant, Instant, Maintained)> {
        let opened = opened_rx.recv().context("the load did not start")?;
        std::thread::sleep((opened + duration / 2).saturating_duration_since(Instant::now()));
        let started = Instant::now();
        let retention = RETENTION_DAYS.to_string();
        let ahead = MAINTAIN_AHEAD_DAYS.to_string();
        let maintained =
            stack::maintain(&bin_dir, &url, &[("RETENTION_DAYS", &retention), ("PARTITION_AHEAD_DAYS", &ahead)])?;
        Ok((opened, started, maintained))
    });
    let loaded = load::run_timed(&spec, |opened| {
        let _ = opened_tx.send(opened);
    });
    let maintenance = maintainer.join().map_err(|_| anyhow::anyhow!("the maintenance thread panicked"))?;
    let (mut measured, timeline) = loaded?;
    let (opened, started, maintained) = maintenance?;
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let from_us = micros(started.saturating_duration_since(opened));
    let to_us = from_us + micros(maintained.elapsed);
    let (during, steady) = split(&timeline, from_us, to_us);
    let windows = window_p99s(&timeline, from_us, to_us);
    measured.stored = Some(stack.stored_at(spec.timestamp)?);
    if maintained.listed("created") == 0 || maintained.listed("dropped") == 0 {
        bail!("maintenance did not both create and drop a partition: {}", maintained.line);
    }
    Ok(MaintenanceRun { measured, during, steady, windows, started_after: Duration::from_micros(from_us), maintained })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(start_us: u64, end_us: u64, ok: bool) -> Timed {
        Timed { start_us, end_us, ok }
    }

    #[test]
    fn requests_overlapping_the_run_are_apart() {
        let timeline = [
            timed(0, 1_000, true),
            timed(9_000, 10_500, true),   // ends inside
            timed(10_200, 30_000, true),  // inside
            timed(19_000, 21_000, false), // an error inside
            timed(19_500, 25_000, true),  // starts inside
            timed(20_001, 21_000, true),
            timed(40_000, 42_000, true),
        ];
        let (during, steady) = split(&timeline, 10_000, 20_000);
        assert_eq!((during.requests, during.errors), (3, 1));
        assert_eq!((steady.requests, steady.errors), (3, 0));
        assert!((during.max_ms - 19.8).abs() < 0.05, "{during:?}");
        assert!((steady.max_ms - 2.0).abs() < 0.01, "{steady:?}");
        let (nothing, _) = split(&timeline, 50_000, 60_000);
        assert_eq!(nothing.requests, 0);
        assert!(nothing.p99_ms.is_nan(), "no requests, no p99");
    }

    #[test]
    fn windows_clear_of_the_run_are_measured_alone() {
        // 100 requests in each 1 ms window, slow in two of them, and the run.
        let mut timeline = Vec::new();
        for window in 0..10u64 {
            let took = if window == 2 || window == 3 { 900 } else { 100 };
            timeline.extend((0..100).map(|i| timed(window * 1_000 + i, window * 1_000 + i + took, true)));
        }
        let windows = window_p99s(&timeline, 8_000, 9_000);
        assert_eq!(
            windows.count, 7,
            "{windows:?}: windows 7, 8 and 9 touch the run (9 also ends past the last request)"
        );
        assert!((windows.median_p99_ms - 0.1).abs() < 0.01, "{windows:?}");
        assert!((windows.p90_p99_ms - 0.9).abs() < 0.01, "{windows:?}");
    }

    #[test]
    fn the_plan_creates_one_and_drops_one() {
        assert!(EXPIRED_DAY_AGE > u64::from(RETENTION_DAYS) + 2, "the expired day is wholly past the horizon");
        assert_eq!(MAINTAIN_AHEAD_DAYS, 14 + 1, "one more than the default PARTITION_AHEAD_DAYS");
    }
}
