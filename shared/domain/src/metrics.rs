//! The metrics question: how many of a tenant's events of one name fall in the window
//! `[from, to)`, in total or per bucket of a minute, an hour or a day (aligned to UTC).

use chrono::{DateTime, TimeDelta, Utc};

use crate::event::{EventName, IngestRules};
use crate::field::FieldError;
use crate::time::{ceil_to_micros, parse_timestamp};

/// Most buckets one answer may hold.
pub const MAX_BUCKETS: i64 = 10_000;

/// Width of a bucket; buckets are aligned to UTC.
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

    /// How long one bucket is.
    pub fn width(self) -> TimeDelta {
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

    /// The first bucket boundary at or after `ts`.
    pub fn ceil(self, ts: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.bucket_start(ts);
        if start == ts { ts } else { start + self.width() }
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

/// A valid metrics question for one tenant. The bounds are whole microseconds (rounded up,
/// which selects exactly the events the exact bounds would: events are stored to the
/// microsecond).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsQuery {
    pub event_name: EventName,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Option<Interval>,
}

/// The parameters of a metrics question.
pub const PARAMETERS: [&str; 4] = ["event_name", "from", "to", "interval"];

impl MetricsQuery {
    /// Checks the parameters as given (`None`: absent), reporting every broken rule. With
    /// retention, `from` may not be before its horizon at `now`: the events there are gone, and
    /// a count that silently missed them would be wrong.
    pub fn parse(
        event_name: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        interval: Option<&str>,
        now: DateTime<Utc>,
        rules: &IngestRules,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        // Each parameter in turn, so the errors come in the order of the contract.
        let event_name = match event_name {
            None => {
                errors.push(FieldError::new("event_name", "is required"));
                None
            }
            Some(name) => EventName::parse(name).map_err(|m| errors.push(FieldError::new("event_name", m))).ok(),
        };
        let mut bound = |name: &str, value: Option<&str>| match value {
            None => {
                errors.push(FieldError::new(name, "is required"));
                None
            }
            Some(v) => parse_timestamp(v).map_err(|m| errors.push(FieldError::new(name, m))).ok(),
        };
        let (from, to) = (bound("from", from), bound("to", to));
        let interval = interval.and_then(|v| {
            let parsed = Interval::parse(v);
            if parsed.is_none() {
                errors.push(FieldError::new("interval", "must be one of minute, hour, day"));
            }
            parsed
        });
        let (Some(from), Some(to)) = (from.map(ceil_to_micros), to.map(ceil_to_micros)) else {
            return Err(errors);
        };
        if let (Some(horizon), Some(days)) = (rules.retention_horizon(now), rules.retention_days)
            && from < horizon
        {
            errors.push(FieldError::new(
                "from",
                format!(
                    "must not be earlier than {}: events older than the retention period of {days} days (RETENTION_DAYS) are not kept, so the count would be incomplete",
                    crate::time::format_timestamp(horizon)
                ),
            ));
        }
        if from >= to {
            errors.push(FieldError::new("to", "must be later than from"));
        } else if let Some(interval) = interval
            && interval.bucket_count(from, to) > MAX_BUCKETS
        {
            errors.push(FieldError::new(
                "interval",
                format!(
                    "gives more than {MAX_BUCKETS} buckets for this window; use a wider interval or a shorter window"
                ),
            ));
        }
        match event_name {
            Some(event_name) if errors.is_empty() => Ok(Self { event_name, from, to, interval }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::format_timestamp;

    const RULES: IngestRules =
        IngestRules { max_future_skew: std::time::Duration::from_secs(3600), retention_days: None };

    fn ts(s: &str) -> DateTime<Utc> {
        parse_timestamp(s).expect("valid timestamp")
    }

    fn parse(
        name: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        interval: Option<&str>,
    ) -> Result<MetricsQuery, Vec<FieldError>> {
        MetricsQuery::parse(name, from, to, interval, ts("2026-12-01T00:00:00Z"), &RULES)
    }

    fn fields_of(name: Option<&str>, from: Option<&str>, to: Option<&str>, interval: Option<&str>) -> Vec<String> {
        parse(name, from, to, interval).expect_err("invalid").into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn parses_a_full_query() {
        let q = parse(Some("sign up"), Some("2026-11-26T00:00:00+01:00"), Some("2026-11-26T01:00:00Z"), Some("minute"))
            .expect("valid");
        assert_eq!(q.event_name.as_str(), "sign up");
        assert_eq!(format_timestamp(q.from), "2026-11-25T23:00:00Z");
        assert_eq!(q.interval, Some(Interval::Minute));
    }

    #[test]
    fn reports_every_broken_parameter() {
        assert_eq!(fields_of(None, None, None, None), ["event_name", "from", "to"]);
        assert_eq!(fields_of(Some("a"), Some("x"), Some("2026-11-26T00:00:00Z"), Some("week")), ["from", "interval"]);
        assert_eq!(
            fields_of(Some(""), Some("2026-11-26T00:00:00Z"), Some("2026-11-27T00:00:00Z"), None),
            ["event_name"]
        );
    }

    #[test]
    fn window_must_be_forward_and_buckets_bounded() {
        let a = Some("2026-11-26T00:00:00Z");
        assert_eq!(fields_of(Some("a"), a, a, None), ["to"]);
        assert_eq!(fields_of(Some("a"), Some("2026-11-26T00:00:01Z"), a, None), ["to"]);
        // 10,000 minutes exactly is allowed; one more microsecond needs another bucket.
        let from = Some("2026-01-01T00:00:00Z");
        assert!(parse(Some("a"), from, Some("2026-01-07T22:40:00Z"), Some("minute")).is_ok());
        assert_eq!(fields_of(Some("a"), from, Some("2026-01-07T22:40:00.000001Z"), Some("minute")), ["interval"]);
    }

    #[test]
    fn a_window_may_not_start_before_retention() {
        let rules = IngestRules { retention_days: Some(7), ..RULES };
        let now = ts("2026-12-01T00:00:00Z");
        let count =
            |from: &str| MetricsQuery::parse(Some("a"), Some(from), Some("2026-12-01T00:00:00Z"), None, now, &rules);
        assert!(count("2026-11-24T00:00:00Z").is_ok(), "exactly at the horizon");
        let errors = count("2026-11-23T23:59:59Z").expect_err("before the horizon");
        assert_eq!(errors[0].field, "from");
        assert!(
            errors[0].message.contains("2026-11-24T00:00:00Z") && errors[0].message.contains("7 days"),
            "{}",
            errors[0].message
        );
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
        assert_eq!(Interval::Hour.ceil(ts("2026-01-01T00:00:00Z")), ts("2026-01-01T00:00:00Z"));
        assert_eq!(Interval::Hour.ceil(ts("2026-01-01T00:00:01Z")), ts("2026-01-01T01:00:00Z"));
    }
}
