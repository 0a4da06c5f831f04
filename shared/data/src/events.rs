//! The `events` table: the idempotent insert and the window counts.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use std::collections::HashMap;

use diesel::sql_types::{Array, BigInt, Bool, Bytea, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::prepared::prepared;
use crate::schema::events;
use crate::{DataError, Pool};

/// A validated event, ready to insert.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: String,
    pub event_id: String,
    pub event_name: String,
    pub occurred_at: DateTime<Utc>,
    pub properties: Option<serde_json::Value>,
    pub payload_hash: Vec<u8>,
}

impl NewEvent {
    /// Builds an event and its payload fingerprint. `occurred_at` is cut to the microsecond
    /// PostgreSQL stores, so a replay fingerprints the same as what was stored.
    pub fn new(
        tenant_id: String,
        event_id: String,
        event_name: String,
        occurred_at: DateTime<Utc>,
        properties: Option<serde_json::Value>,
    ) -> Self {
        let occurred_at = truncate_to_micros(occurred_at);
        let payload_hash = payload_fingerprint(&event_name, occurred_at, properties.as_ref()).to_vec();
        Self { tenant_id, event_id, event_name, occurred_at, properties, payload_hash }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct Event {
    pub tenant_id: String,
    pub event_id: String,
    pub event_name: String,
    pub occurred_at: DateTime<Utc>,
    pub properties: Option<serde_json::Value>,
    pub payload_hash: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

/// What an idempotent insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new row was written.
    Created,
    /// A row with this identity and the same payload already existed; nothing was written.
    Duplicate,
    /// A row with this identity but a different payload already existed; nothing was written.
    KeyReused,
}

/// The payload fingerprint (see `domain::fingerprint`).
pub fn payload_fingerprint(
    event_name: &str,
    occurred_at: DateTime<Utc>,
    properties: Option<&serde_json::Value>,
) -> [u8; 32] {
    *domain::Fingerprint::of(event_name, occurred_at, properties).as_bytes()
}

impl NewEvent {
    /// True when `stored`, the fingerprint stored with this identity, is this event's payload:
    /// in the current form, or in the first release's (events stored before numbers were
    /// compared by value keep that one).
    pub fn matches_stored(&self, stored: &[u8]) -> bool {
        stored == self.payload_hash.as_slice()
            || stored
                == domain::Fingerprint::legacy(&self.event_name, self.occurred_at, self.properties.as_ref()).as_bytes()
    }
}

/// `ts` cut to the whole microsecond at or before it: the precision PostgreSQL stores.
pub fn truncate_to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(ts.timestamp_micros()).unwrap_or(ts)
}

/// Inserts each event unless its `(tenant_id, event_id)` exists, and says what happened to
/// each, in order. All events go to PostgreSQL in one statement: `INSERT … SELECT FROM unnest(…)
/// ON CONFLICT DO NOTHING`, so concurrent identical requests create exactly one row, and the
/// stored fingerprint of each conflicting row is read in the same statement to tell a replay
/// from a reused key. A single event is a batch of one.
pub async fn insert_idempotent(pool: &Pool, events: &[NewEvent]) -> Result<Vec<InsertOutcome>, DataError> {
    let mut conn = pool.get().await?;
    // The first occurrence of each identity is sent; later ones are judged against it.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
    let unique: Vec<usize> = (0..events.len())
        .filter(|&i| first_of.entry((&events[i].tenant_id, &events[i].event_id)).or_insert(i) == &i)
        .collect();
    let mut stored: Vec<Option<StoredAs>> = vec![None; events.len()];
    let mut pending = unique;
    // A conflicting row can be invisible to the statement's snapshot when a concurrent
    // transaction committed it after the statement began; a second statement sees it. It can
    // vanish only if deleted (retention); then the insert is simply tried again.
    for _ in 0..3 {
        if pending.is_empty() {
            break;
        }
        let rows = insert_unnest(&mut conn, events, &pending).await?;
        let mut unresolved = Vec::new();
        for row in rows {
            let i = pending[usize::try_from(row.ord - 1).unwrap_or(usize::MAX)];
            match (row.created, row.stored_hash) {
                (true, _) => stored[i] = Some(StoredAs::CreatedHere),
                (false, Some(hash)) => stored[i] = Some(StoredAs::Existing(hash)),
                (false, None) => unresolved.push(i),
            }
        }
        pending = unresolved;
    }
    if !pending.is_empty() {
        return Err(DataError::Unavailable("conflicting rows stayed unresolved after retries".into()));
    }
    Ok(events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let first = first_of[&(event.tenant_id.as_str(), event.event_id.as_str())];
            match &stored[first] {
                Some(StoredAs::CreatedHere) if first == i => InsertOutcome::Created,
                Some(StoredAs::CreatedHere) if events[first].payload_hash == event.payload_hash => {
                    InsertOutcome::Duplicate
                }
                Some(StoredAs::Existing(hash)) if event.matches_stored(hash) => InsertOutcome::Duplicate,
                _ => InsertOutcome::KeyReused,
            }
        })
        .collect())
}

#[derive(Debug, Clone)]
enum StoredAs {
    CreatedHere,
    Existing(Vec<u8>),
}

#[derive(QueryableByName)]
struct InsertedRow {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(sql_type = Bool)]
    created: bool,
    #[diesel(sql_type = Nullable<Bytea>)]
    stored_hash: Option<Vec<u8>>,
}

/// One statement whatever the batch size, so PostgreSQL plans it once per connection.
const INSERT_UNNEST: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::bytea[])
        WITH ORDINALITY AS t(tenant_id, event_id, event_name, occurred_at, properties, payload_hash, ord)
), inserted AS (
    INSERT INTO events (tenant_id, event_id, event_name, occurred_at, properties, payload_hash)
    SELECT tenant_id, event_id, event_name, occurred_at, properties, payload_hash FROM input
    -- One lock order for every statement, so overlapping concurrent batches cannot deadlock.
    ORDER BY tenant_id, event_id
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING tenant_id, event_id
)
SELECT i.ord AS ord,
       ins.event_id IS NOT NULL AS created,
       CASE WHEN ins.event_id IS NULL THEN
           (SELECT e.payload_hash FROM events e WHERE e.tenant_id = i.tenant_id AND e.event_id = i.event_id)
       END AS stored_hash
FROM input i
LEFT JOIN inserted ins ON ins.tenant_id = i.tenant_id AND ins.event_id = i.event_id";

async fn insert_unnest(
    conn: &mut AsyncPgConnection,
    events: &[NewEvent],
    which: &[usize],
) -> Result<Vec<InsertedRow>, DataError> {
    let tenant_ids: Vec<&str> = which.iter().map(|&i| events[i].tenant_id.as_str()).collect();
    let event_ids: Vec<&str> = which.iter().map(|&i| events[i].event_id.as_str()).collect();
    let names: Vec<&str> = which.iter().map(|&i| events[i].event_name.as_str()).collect();
    let times: Vec<DateTime<Utc>> = which.iter().map(|&i| events[i].occurred_at).collect();
    let properties: Vec<Option<&serde_json::Value>> = which.iter().map(|&i| events[i].properties.as_ref()).collect();
    let hashes: Vec<&[u8]> = which.iter().map(|&i| events[i].payload_hash.as_slice()).collect();
    Ok(prepared(
        diesel::sql_query(INSERT_UNNEST)
            .bind::<Array<Text>, _>(tenant_ids)
            .bind::<Array<Text>, _>(event_ids)
            .bind::<Array<Text>, _>(names)
            .bind::<Array<Timestamptz>, _>(times)
            .bind::<Array<Nullable<Jsonb>>, _>(properties)
            .bind::<Array<Bytea>, _>(hashes),
    )
    .load(conn)
    .await?)
}

/// The stored event with this identity, if any.
pub async fn find_event(pool: &Pool, tenant_id: &str, event_id: &str) -> Result<Option<Event>, DataError> {
    let mut conn = pool.get().await?;
    Ok(events::table.find((tenant_id, event_id)).select(Event::as_select()).first(&mut conn).await.optional()?)
}

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
        let ceil = |ts: DateTime<Utc>, i: Interval| {
            let start = i.bucket_start(ts);
            if start == ts { ts } else { start + i.width() }
        };
        let m1 = ceil(from, Interval::Minute).min(to);
        let m2 = Interval::Minute.bucket_start(to).max(m1);
        let (h1, h2) = if use_hours {
            let h1 = ceil(m1, Interval::Hour).min(m2);
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
            .bind::<Text, _>($tenant_id)
            .bind::<Text, _>($event_name)
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
    SELECT date_trunc($13, occurred_at, 'UTC') AS b, count(*) AS n FROM events
        WHERE tenant_id = $1 AND event_name = $2 AND occurred_at >= $3 AND occurred_at < $4 GROUP BY 1
    UNION ALL SELECT date_trunc($13, bucket, 'UTC'), count FROM event_counts_minute
        WHERE tenant_id = $1 AND event_name = $2 AND bucket >= $5 AND bucket < $6
    UNION ALL SELECT date_trunc($13, bucket, 'UTC'), count FROM event_counts_hour
        WHERE tenant_id = $1 AND event_name = $2 AND bucket >= $7 AND bucket < $8
    UNION ALL SELECT date_trunc($13, bucket, 'UTC'), count FROM event_counts_minute
        WHERE tenant_id = $1 AND event_name = $2 AND bucket >= $9 AND bucket < $10
    UNION ALL SELECT date_trunc($13, occurred_at, 'UTC'), count(*) FROM events
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
    tenant_id: &str,
    event_name: &str,
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

/// Width of a bucket; buckets are aligned to UTC./// Width of a bucket; buckets are aligned to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Minute,
    Hour,
    Day,
}

impl Interval {
    /// The name PostgreSQL's `date_trunc` and the HTTP API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Parses `minute`, `hour` or `day`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Self::Minute),
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    pub(crate) fn width(self) -> TimeDelta {
        match self {
            Self::Minute => TimeDelta::minutes(1),
            Self::Hour => TimeDelta::hours(1),
            Self::Day => TimeDelta::days(1),
        }
    }

    /// Start of the bucket holding `ts`.
    pub fn bucket_start(self, ts: DateTime<Utc>) -> DateTime<Utc> {
        // Integer microseconds work for every representable year, where chrono's
        // `duration_trunc` (nanoseconds in an i64) fails outside 1677-2262.
        let width = self.width().num_microseconds().unwrap_or(1);
        DateTime::from_timestamp_micros(ts.timestamp_micros().div_euclid(width) * width).unwrap_or(ts)
    }

    /// How many buckets cover `[from, to)`, counting the partial ones at either edge.
    pub fn bucket_count(self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        if to <= from {
            return 0;
        }
        let span = (to - self.bucket_start(from)).num_microseconds().unwrap_or(i64::MAX);
        let width = self.width().num_microseconds().unwrap_or(1);
        span.saturating_add(width - 1) / width
    }
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
    tenant_id: &str,
    event_name: &str,
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

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("valid timestamp").with_timezone(&Utc)
    }

    #[test]
    fn fingerprint_ignores_sub_microsecond_digits_and_key_order() {
        let a = NewEvent::new(
            "t".into(),
            "e".into(),
            "signup".into(),
            ts("2026-01-01T00:00:00.1234567Z"),
            Some(serde_json::json!({"a": 1, "b": 2})),
        );
        let b = NewEvent::new(
            "t".into(),
            "e".into(),
            "signup".into(),
            ts("2026-01-01T01:00:00.123456+01:00"),
            serde_json::from_str(r#"{"b": 2, "a": 1}"#).ok(),
        );
        assert_eq!(a.payload_hash, b.payload_hash);
        assert_eq!(a.occurred_at, ts("2026-01-01T00:00:00.123456Z"));
    }

    #[test]
    fn fingerprint_tells_payloads_apart() {
        let at = ts("2026-01-01T00:00:00Z");
        let base = payload_fingerprint("signup", at, None);
        assert_ne!(base, payload_fingerprint("signup", at, Some(&serde_json::json!({}))));
        assert_ne!(base, payload_fingerprint("signups", at, None));
        assert_ne!(base, payload_fingerprint("signup", at + TimeDelta::microseconds(1), None));
    }

    #[test]
    fn bucket_count_includes_partial_edges() {
        let h = Interval::Hour;
        assert_eq!(h.bucket_count(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T03:00:00Z")), 3);
        assert_eq!(h.bucket_count(ts("2026-01-01T00:30:00Z"), ts("2026-01-01T03:00:00Z")), 3);
        assert_eq!(h.bucket_count(ts("2026-01-01T00:30:00Z"), ts("2026-01-01T03:00:01Z")), 4);
        assert_eq!(h.bucket_count(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:00:00.000001Z")), 1);
        assert_eq!(Interval::Day.bucket_count(ts("2026-01-01T23:00:00Z"), ts("2026-01-02T01:00:00Z")), 2);
    }

    #[test]
    fn buckets_align_in_any_century() {
        let old = ts("1500-03-01T10:42:00Z");
        assert_eq!(Interval::Hour.bucket_start(old), ts("1500-03-01T10:00:00Z"));
        assert_eq!(Interval::Day.bucket_start(ts("9999-12-31T23:59:59.999999Z")), ts("9999-12-31T00:00:00Z"));
        assert_eq!(Interval::Minute.bucket_start(ts("1969-12-31T23:59:30.5Z")), ts("1969-12-31T23:59:00Z"));
        assert_eq!(truncate_to_micros(ts("1500-01-01T00:00:00.0000019Z")), ts("1500-01-01T00:00:00.000001Z"));
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
