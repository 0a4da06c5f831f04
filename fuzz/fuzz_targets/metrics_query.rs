//! `GET /metrics` query string: arbitrary text → `metrics::parse_query`.

#![no_main]

mod common;

use domain::EventName;
use domain::metrics::{MAX_BUCKETS, PARAMETERS};
use domain::time::{ceil_to_micros, format_timestamp, parse_timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    match metrics::parse_query(raw, common::now(), &common::RULES) {
        Ok(q) => {
            assert!(q.from < q.to, "accepted an empty or backward window: {q:?}");
            assert!(EventName::parse(q.event_name.as_str()).is_ok(), "an accepted event name passes its own check");
            // Bounds are whole microseconds (what PostgreSQL compares) and echo back exactly.
            assert_eq!(ceil_to_micros(q.from), q.from);
            assert_eq!(ceil_to_micros(q.to), q.to);
            assert_eq!(parse_timestamp(&format_timestamp(q.from)), Ok(q.from));
            assert_eq!(parse_timestamp(&format_timestamp(q.to)), Ok(q.to));
            if let Some(interval) = q.interval {
                let count = interval.bucket_count(q.from, q.to);
                assert!((1..=MAX_BUCKETS).contains(&count), "{count} buckets for {q:?}");
                // The zero-filled response walks the buckets exactly like this
                // (data's zero_filled); its length must be the count that was bounded.
                let mut start = interval.bucket_start(q.from);
                assert!(start <= q.from && q.from - start < interval.width());
                let mut walked = 0;
                while start < q.to && walked <= MAX_BUCKETS {
                    walked += 1;
                    start += interval.width();
                }
                assert_eq!(walked, count, "bucket_count disagrees with the buckets served for {q:?}");
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an Err with no errors for {raw:?}");
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
            for error in &errors {
                assert!(!error.message.is_empty(), "{error:?}");
                assert!(!error.field.is_empty(), "an error without a field name for {raw:?}: {errors:?}");
                let named = error.field == "query"
                    || PARAMETERS.contains(&error.field.as_str())
                    || pairs.iter().any(|(k, _)| k == &error.field);
                assert!(named, "error names a parameter the query does not have: {error:?}");
            }
        }
    }
});
