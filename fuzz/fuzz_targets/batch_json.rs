//! `POST /events/batch` body: bytes → JSON → the envelope rules → `parse_event` per item.
//!
//! `batch_items` in functions/events/src/lib.rs is private, so `envelope` below mirrors it
//! line for line; once it is public this target should call it instead.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use platform::FieldError;
use serde_json::Value;

/// The mirror of `events::batch_items`: `{"events": [...]}` with 1 to 1000 items.
fn envelope(body: Value) -> Result<Vec<Value>, FieldError> {
    let Value::Object(mut envelope) = body else {
        return Err(FieldError::new("body", "must be a JSON object with an `events` array"));
    };
    if let Some(unknown) = envelope.keys().find(|k| k.as_str() != "events") {
        return Err(FieldError::new(unknown.clone(), "unknown field"));
    }
    match envelope.remove("events") {
        Some(Value::Array(items)) if (1..=events::MAX_BATCH_EVENTS).contains(&items.len()) => Ok(items),
        Some(Value::Array(_)) => Err(FieldError::new("events", "must hold 1 to 1000 events")),
        Some(_) => Err(FieldError::new("events", "must be an array of events")),
        None => Err(FieldError::new("events", "is required")),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let items = match envelope(body.clone()) {
        Ok(items) => items,
        Err(error) => {
            assert!(!error.message.is_empty());
            assert!(
                !error.field.is_empty(),
                "an envelope error without a field name: {error:?}"
            );
            let named = error.field == "body"
                || error.field == "events"
                || body.as_object().is_some_and(|o| o.contains_key(&error.field));
            assert!(named, "envelope error names a field the body does not have: {error:?}");
            return;
        }
    };
    assert!((1..=events::MAX_BATCH_EVENTS).contains(&items.len()));
    let now = common::now();
    let mut accepted = Vec::new();
    let mut results = 0;
    for item in &items {
        // A bad item rejects only itself: each is judged on its own, with one clock.
        match events::parse_event(item.clone(), now, common::SKEW) {
            Ok(input) => {
                common::check_accepted(item, &input, now);
                accepted.push(input);
            }
            Err(errors) => common::check_rejected(item, &errors),
        }
        results += 1;
    }
    assert_eq!(results, items.len(), "one result per item, in order");
    // Two items with the same event_id and payload fingerprint alike (a duplicate, not a
    // reused key), whatever their position in the batch.
    for (i, a) in accepted.iter().enumerate() {
        for b in &accepted[i + 1..] {
            if a == b {
                let fp = |e: &events::EventInput| {
                    data::payload_fingerprint(
                        &e.event_name,
                        data::truncate_to_micros(e.timestamp),
                        e.properties.as_ref(),
                    )
                };
                assert_eq!(fp(a), fp(b));
            }
        }
    }
});
