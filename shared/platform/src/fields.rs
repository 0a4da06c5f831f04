//! Rules for the fields that more than one function reads (event names, identities,
//! properties and timestamps), so that `POST /events`, the Pub/Sub worker and `GET /metrics`
//! accept exactly the same values.

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use serde_json::Value;

/// Longest event name, in characters.
pub const EVENT_NAME_MAX_CHARS: usize = 200;

/// Checks an event name: 1 to 200 characters, none of them control characters.
pub fn check_event_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > EVENT_NAME_MAX_CHARS {
        return Err(format!("must be 1 to {EVENT_NAME_MAX_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Largest `properties` object, serialised.
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;

/// Checks an event identity: 1 to 255 visible ASCII characters.
pub fn check_event_id(raw: &[u8]) -> Result<String, String> {
    if raw.is_empty() || raw.len() > 255 || !raw.iter().all(u8::is_ascii_graphic) {
        return Err("must be 1 to 255 visible ASCII characters".into());
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// Checks a `properties` object: at most 32 KiB as JSON, and no U+0000 anywhere.
pub fn check_properties(value: &Value) -> Result<(), String> {
    if value.to_string().len() > MAX_PROPERTIES_BYTES {
        return Err(format!("must be at most {MAX_PROPERTIES_BYTES} bytes as JSON"));
    }
    // PostgreSQL's jsonb cannot hold U+0000; refuse it here rather than fail the insert.
    if contains_nul(value) {
        return Err("must not contain the character U+0000".into());
    }
    Ok(())
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

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

/// The earliest whole microsecond at or after `ts`. Events are stored to the microsecond, so
/// a window bound rounded up this way selects exactly the events the exact bound would.
pub fn ceil_to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    let floor = data::truncate_to_micros(ts);
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
    fn event_names() {
        assert!(check_event_name("signup").is_ok());
        assert!(check_event_name(&"é".repeat(200)).is_ok());
        assert!(check_event_name(&"é".repeat(201)).is_err());
        assert!(check_event_name("").is_err());
        assert!(check_event_name("sign\nup").is_err());
        assert!(check_event_name("sign\u{7f}up").is_err());
    }

    #[test]
    fn event_ids_are_visible_ascii() {
        assert!(check_event_id(b"abc-123_~").is_ok());
        assert!(check_event_id(&[b'a'; 255]).is_ok());
        assert!(check_event_id(&[b'a'; 256]).is_err());
        assert!(check_event_id(b"").is_err());
        assert!(check_event_id(b"a b").is_err());
        assert!(check_event_id("é".as_bytes()).is_err());
    }

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
    fn ceil_to_micros_rounds_up_only_partial_micros() {
        let exact = parse_timestamp("2026-01-01T00:00:00.000001Z").expect("valid");
        assert_eq!(ceil_to_micros(exact), exact);
        let partial = parse_timestamp("2026-01-01T00:00:00.0000001Z").expect("valid");
        assert_eq!(ceil_to_micros(partial), exact);
    }
}
