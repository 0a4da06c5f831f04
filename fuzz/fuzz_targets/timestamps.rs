//! RFC 3339 timestamps as events and queries carry them: text → `parse_timestamp`.

#![no_main]

use chrono::{Datelike, TimeDelta, Timelike};
use domain::time::{ceil_to_micros, format_timestamp, parse_timestamp, truncate_to_micros};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(ts) = parse_timestamp(text) else { return };
    assert!((1..=9999).contains(&ts.year()), "{text:?} gave year {}", ts.year());
    // A leap second becomes the instant after it: nothing PostgreSQL cannot store is left.
    assert!(ts.nanosecond() < 1_000_000_000, "{text:?} kept a leap second: {ts:?}");

    let written = format_timestamp(ts);
    assert!(written.ends_with('Z'), "{written}");
    assert_eq!(parse_timestamp(&written), Ok(ts), "{text:?} → {written:?} does not round-trip");

    let ceil = ceil_to_micros(ts);
    assert!(ceil >= ts, "ceil_to_micros went down for {text:?}");
    assert!(ceil - ts < TimeDelta::microseconds(1), "ceil_to_micros moved {text:?} by a microsecond or more");
    assert_eq!(ceil_to_micros(ceil), ceil, "ceil_to_micros is not idempotent for {text:?}");
    assert_eq!(truncate_to_micros(ceil), ceil);
    let floor = truncate_to_micros(ts);
    assert!(floor <= ts && ts - floor < TimeDelta::microseconds(1));
    // A stored bound is written back as RFC 3339 too.
    assert_eq!(parse_timestamp(&format_timestamp(ceil)), Ok(ceil));
});
