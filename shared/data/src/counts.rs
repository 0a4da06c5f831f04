//! Window counts: how many of a tenant's events of one name fall in `[from, to)`, in total or
//! per bucket, read from the per-minute and per-hour rollups for whole minutes and hours and
//! from the events index only for the partial minutes at the window's edges.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use domain::{EventName, Interval, TenantId};

use crate::prepared::prepared;
use crate::{DataError, Pool};

/// The window `[from, to)` cut into the pieces each source counts exactly: whole hours from
/// the hour rollup, whole minutes at either side of them from the minute rollup, and the
/// partial minutes at the two edges from the events themselves. An empty piece has `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segments {
    raw_left: (DateTime<Utc>, DateTime<Utc>),
    minutes_left: (DateTime<Utc>, DateTime<Utc>),
    hours: (DateTime<Utc>, DateTime<Utc>),
    minutes_right: (DateTime<Utc>, DateTime<Utc>),
    raw_right: (DateTime<Utc>, DateTime<Utc>),
}

impl Segments {
    /// Splits `[from, to)`; with `use_hours` false, whole hours are counted by minutes (for
    /// per-minute buckets, which an hour row cannot fill).
    fn of(from: DateTime<Utc>, to: DateTime<Utc>, use_hours: bool) -> Self {
        let m1 = Interval::Minute.ceil(from).min(to);
        let m2 = Interval::Minute.bucket_start(to).max(m1);
        let (h1, h2) = if use_hours {
            let h1 = Interval::Hour.ceil(m1).min(m2);
            (h1, Interval::Hour.bucket_start(m2).max(h1))
        } else {
            (m2, m2)
        };
        Self {
            raw_left: (from, m1),
            minutes_left: (m1, h1),
            hours: (h1, h2),
            minutes_right: (h2, m2),
            raw_right: (m2, to),
        }
    }
}

/// Binds the tenant, the name and the five segments as `$1`..`$12`.
macro_rules! bind_segments {
    ($query:expr, $tenant_id:expr, $event_name:expr, $s:expr) => {
        $query
            .bind::<Text, _>($tenant_id.as_str())
            .bind::<Text, _>($event_name.as_str())
            .bind::<Timestamptz, _>($s.raw_left.0)
            .bind::<Timestamptz, _>($s.raw_left.1)
            .bind::<Timestamptz, _>($s.minutes_left.0)
            .bind::<Timestamptz, _>($s.minutes_left.1)
            .bind::<Timestamptz, _>($s.hours.0)
            .bind::<Timestamptz, _>($s.hours.1)
            .bind::<Timestamptz, _>($s.minutes_right.0)
            .bind::<Timestamptz, _>($s.minutes_right.1)
            .bind::<Timestamptz, _>($s.raw_right.0)
            .bind::<Timestamptz, _>($s.raw_right.1)
    };
}

/// The per-segment sources, each yielding `(b, n)`: `b` a timestamp in the segment, `n` a count.
/// `$13` is the bucket width for `date_trunc`. A macro, so that the statements built on it are
/// constants too (see `prepared`).
macro_rules! segment_sources {
    () => {
        "\
    SELECT date_trunc($13, occurred_at, 'UTC') AS b, count(*) AS n FROM event_log
        WHERE tenant_id = $1 AND event_name = $2 AND occurred_at >= $3 AND occurred_at < $4 GROUP BY 1
    UNION ALL SELECT date_trunc($13, bucket, 'UTC'), count FROM event_counts_minute
        WHERE tenant_id = $1 AND event_name = $2 AND bucket >= $5 AND bucket < $6
    UNION ALL SELECT date_trunc($13, bucket, 'UTC'), count FROM event_counts_hour
        WHERE tenant_id = $1 AND event_name = $2 AND bucket >= $7 AND bucket < $8
    UNION ALL SELECT date_trunc($13, bucket, 'UTC'), count FROM event_counts_minute
        WHERE tenant_id = $1 AND event_name = $2 AND bucket >= $9 AND bucket < $10
    UNION ALL SELECT date_trunc($13, occurred_at, 'UTC'), count(*) FROM event_log
        WHERE tenant_id = $1 AND event_name = $2 AND occurred_at >= $11 AND occurred_at < $12 GROUP BY 1"
    };
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Number of the tenant's events named `event_name` with `from <= occurred_at < to`, exact,
/// in one statement that reads rollups for whole hours and minutes and the events index only
/// for the partial minutes at the edges.
pub async fn count_in_window(
    pool: &Pool,
    tenant_id: &TenantId,
    event_name: &EventName,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64, DataError> {
    let mut conn = pool.get().await?;
    let segments = Segments::of(from, to, true);
    let query =
        diesel::sql_query(concat!("SELECT COALESCE(sum(n), 0)::bigint AS count FROM (", segment_sources!(), ") s"));
    let row: CountRow = prepared(bind_segments!(query, tenant_id, event_name, segments).bind::<Text, _>("minute"))
        .get_result(&mut conn)
        .await?;
    Ok(row.count)
}

/// The count of one bucket. Edge buckets count only the part inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub count: i64,
}

#[derive(QueryableByName)]
struct BucketRow {
    #[diesel(sql_type = Timestamptz)]
    start: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Per-bucket counts over `[from, to)`, one entry for every bucket including empty ones, in
/// order, from the same segments as `count_in_window`. The caller bounds the number of buckets
/// (`Interval::bucket_count`).
pub async fn count_buckets(
    pool: &Pool,
    tenant_id: &TenantId,
    event_name: &EventName,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: Interval,
) -> Result<Vec<Bucket>, DataError> {
    let mut conn = pool.get().await?;
    let segments = Segments::of(from, to, interval != Interval::Minute);
    let query = diesel::sql_query(concat!(
        "SELECT b AS start, sum(n)::bigint AS count FROM (",
        segment_sources!(),
        ") s GROUP BY b ORDER BY b"
    ));
    let rows: Vec<BucketRow> =
        prepared(bind_segments!(query, tenant_id, event_name, segments).bind::<Text, _>(interval.as_str()))
            .load(&mut conn)
            .await?;
    Ok(zero_filled(rows, from, to, interval))
}

fn zero_filled(rows: Vec<BucketRow>, from: DateTime<Utc>, to: DateTime<Utc>, interval: Interval) -> Vec<Bucket> {
    let mut rows = rows.into_iter().peekable();
    let mut buckets = Vec::with_capacity(usize::try_from(interval.bucket_count(from, to)).unwrap_or(0));
    let mut start = interval.bucket_start(from);
    while start < to {
        let count = match rows.peek() {
            Some(row) if row.start == start => rows.next().map_or(0, |r| r.count),
            _ => 0,
        };
        buckets.push(Bucket { start, count });
        start += interval.width();
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("valid timestamp").with_timezone(&Utc)
    }

    #[test]
    fn segments_cover_the_window_exactly_once() {
        let s = Segments::of(ts("2026-01-01T00:30:15.5Z"), ts("2026-01-01T03:10:20Z"), true);
        assert_eq!(s.raw_left, (ts("2026-01-01T00:30:15.5Z"), ts("2026-01-01T00:31:00Z")));
        assert_eq!(s.minutes_left, (ts("2026-01-01T00:31:00Z"), ts("2026-01-01T01:00:00Z")));
        assert_eq!(s.hours, (ts("2026-01-01T01:00:00Z"), ts("2026-01-01T03:00:00Z")));
        assert_eq!(s.minutes_right, (ts("2026-01-01T03:00:00Z"), ts("2026-01-01T03:10:00Z")));
        assert_eq!(s.raw_right, (ts("2026-01-01T03:10:00Z"), ts("2026-01-01T03:10:20Z")));

        // Inside one minute: all raw, the rest empty.
        let s = Segments::of(ts("2026-01-01T00:30:15Z"), ts("2026-01-01T00:30:45Z"), true);
        assert_eq!(s.raw_left, (ts("2026-01-01T00:30:15Z"), ts("2026-01-01T00:30:45Z")));
        for (lo, hi) in [s.minutes_left, s.hours, s.minutes_right, s.raw_right] {
            assert_eq!(lo, hi);
        }
        // Aligned edges: nothing raw.
        let s = Segments::of(ts("2026-01-01T00:00:00Z"), ts("2026-01-02T00:00:00Z"), true);
        assert_eq!(s.hours, (ts("2026-01-01T00:00:00Z"), ts("2026-01-02T00:00:00Z")));
        assert_eq!((s.raw_left.0, s.raw_right.1), (s.raw_left.1, s.raw_right.0));
        // Without hours, whole hours are counted by minutes.
        let s = Segments::of(ts("2026-01-01T00:30:00Z"), ts("2026-01-01T03:10:00Z"), false);
        assert_eq!(s.minutes_left, (ts("2026-01-01T00:30:00Z"), ts("2026-01-01T03:10:00Z")));
        assert_eq!(s.hours.0, s.hours.1);
    }

    #[test]
    fn segments_are_contiguous_for_many_windows() {
        let base = ts("2026-01-01T00:00:00Z");
        for i in 0..2000i64 {
            let from = base + TimeDelta::microseconds(i * 7_919_533 % 86_400_000_000);
            let to = from + TimeDelta::microseconds((i * 104_729_311) % 20_000_000_000 + 1);
            for use_hours in [true, false] {
                let s = Segments::of(from, to, use_hours);
                let pieces = [s.raw_left, s.minutes_left, s.hours, s.minutes_right, s.raw_right];
                assert_eq!(pieces[0].0, from);
                assert_eq!(pieces[4].1, to);
                for pair in pieces.windows(2) {
                    assert_eq!(pair[0].1, pair[1].0, "{from} {to} {s:?}");
                }
                assert!(pieces.iter().all(|(lo, hi)| lo <= hi), "{s:?}");
            }
        }
    }

    #[test]
    fn zero_fill_keeps_every_bucket_in_order() {
        let rows = vec![BucketRow { start: ts("2026-01-01T01:00:00Z"), count: 5 }];
        let buckets = zero_filled(rows, ts("2026-01-01T00:30:00Z"), ts("2026-01-01T02:30:00Z"), Interval::Hour);
        let got: Vec<(String, i64)> = buckets.iter().map(|b| (b.start.to_rfc3339(), b.count)).collect();
        assert_eq!(
            got,
            vec![
                ("2026-01-01T00:00:00+00:00".into(), 0),
                ("2026-01-01T01:00:00+00:00".into(), 5),
                ("2026-01-01T02:00:00+00:00".into(), 0),
            ]
        );
    }
}
