//! Instants as the contract reads and writes them: RFC 3339 with an explicit offset, held in
//! UTC to the microsecond PostgreSQL stores.

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};

/// Parses an RFC 3339 timestamp with an explicit offset, into UTC. A leap second becomes the
/// instant after it (PostgreSQL has none), and the result must fall in years 0001-9999 UTC, so
/// that it can be stored and written back as RFC 3339.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .map_err(|_| "must be an RFC 3339 timestamp with an offset, such as 2026-11-26T09:30:00Z".to_owned())?
        .with_timezone(&Utc);
    let utc = parsed
        .with_nanosecond(0)
        .and_then(|whole| whole.checked_add_signed(TimeDelta::nanoseconds(i64::from(parsed.nanosecond()))))
        .unwrap_or(parsed);
    // Checked after rounding up to the microsecond too: a window bound is rounded up.
    let in_range = |ts: DateTime<Utc>| (1..=9999).contains(&chrono::Datelike::year(&ts));
    if !in_range(utc) || !in_range(ceil_to_micros(utc)) {
        return Err("must fall between years 0001 and 9999 in UTC".into());
    }
    Ok(utc)
}

/// `ts` cut to the whole microsecond at or before it: the precision PostgreSQL stores.
pub fn truncate_to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(ts.timestamp_micros()).unwrap_or(ts)
}

/// The earliest whole microsecond at or after `ts`. Events are stored to the microsecond, so
/// a window bound rounded up this way selects exactly the events the exact bound would.
pub fn ceil_to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    let floor = truncate_to_micros(ts);
    if floor == ts { ts } else { floor + TimeDelta::microseconds(1) }
}

/// RFC 3339 in UTC with a `Z`, with as many fraction digits as needed.
pub fn format_timestamp(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_need_an_offset_and_become_utc() {
        let ts = parse_timestamp("2026-11-26T10:30:00.5+01:00").expect("valid");
        assert_eq!(format_timestamp(ts), "2026-11-26T09:30:00.500Z");
        assert!(parse_timestamp("2026-11-26T10:30:00").is_err());
        assert!(parse_timestamp("2026-11-26").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn leap_seconds_and_far_years() {
        assert_eq!(
            parse_timestamp("2016-12-31T23:59:60.5Z").map(format_timestamp),
            Ok("2017-01-01T00:00:00.500Z".to_owned())
        );
        assert!(parse_timestamp("0000-01-01T00:00:00+05:00").is_err());
        assert!(parse_timestamp("9999-12-31T23:30:00-05:00").is_err());
        assert!(parse_timestamp("0001-01-01T00:00:00Z").is_ok());
        assert!(parse_timestamp("9999-12-31T23:59:59.999999Z").is_ok());
        assert!(parse_timestamp("9999-12-31T23:59:59.9999999Z").is_err());
    }

    #[test]
    fn microseconds_round_down_to_store_and_up_to_bound() {
        let exact = parse_timestamp("2026-01-01T00:00:00.000001Z").expect("valid");
        assert_eq!(ceil_to_micros(exact), exact);
        let partial = parse_timestamp("2026-01-01T00:00:00.0000001Z").expect("valid");
        assert_eq!(ceil_to_micros(partial), exact);
        assert_eq!(
            truncate_to_micros(parse_timestamp("1500-01-01T00:00:00.0000019Z").expect("valid"))
                .timestamp_subsec_micros(),
            1
        );
    }
}
