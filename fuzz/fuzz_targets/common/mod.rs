//! Invariants shared by the fuzz targets. Each target calls the service's public parsing and
//! validation code and then checks what the contract promises about the result, so a target
//! fails on a wrong answer, not only on a panic.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use data::{EventMessage, NewEvent};
use events::EventInput;
use platform::FieldError;
use platform::fields::{check_event_id, check_event_name, check_properties, parse_timestamp};
use serde_json::Value;

/// The default `MAX_FUTURE_SKEW_SECS`.
pub const SKEW: Duration = Duration::from_secs(3600);

/// The fields of an event body.
pub const EVENT_FIELDS: [&str; 4] = ["event_name", "timestamp", "properties", "event_id"];

/// A fixed server clock, so a crash reproduces whatever the date.
pub fn now() -> DateTime<Utc> {
    parse_timestamp("2026-11-26T12:00:00Z").expect("a valid clock")
}

/// What must hold for an event `parse_event` accepted from `body` at `now`.
pub fn check_accepted(body: &Value, input: &EventInput, now: DateTime<Utc>) {
    check_event_name(&input.event_name).expect("an accepted event name passes check_event_name");
    assert_eq!(body.get("event_name").and_then(Value::as_str), Some(input.event_name.as_str()));
    let skew = TimeDelta::from_std(SKEW).expect("skew fits");
    assert!(input.timestamp <= now + skew, "accepted a timestamp beyond the future skew: {}", input.timestamp);
    assert!((1..=9999).contains(&input.timestamp.year()), "accepted year {}", input.timestamp.year());
    if let Some(properties) = &input.properties {
        assert!(properties.is_object(), "accepted non-object properties: {properties}");
        check_properties(properties).expect("accepted properties pass check_properties");
        assert_eq!(body.get("properties"), Some(properties), "properties changed on the way");
    }
    if let Some(id) = &input.event_id {
        assert_eq!(check_event_id(id.as_bytes()).as_deref(), Ok(id.as_str()), "accepted event_id {id:?}");
    }

    let event_id = input.event_id.clone().unwrap_or_else(|| "0197a1c2-0000-7000-8000-000000000000".to_owned());
    let event =
        NewEvent::new("acme".into(), event_id, input.event_name.clone(), input.timestamp, input.properties.clone());
    check_new_event(&event);
    assert!(event.occurred_at <= input.timestamp && input.timestamp - event.occurred_at < TimeDelta::microseconds(1));
    check_through_pubsub(&event);
}

/// What must hold for any event about to be inserted.
pub fn check_new_event(event: &NewEvent) {
    assert_eq!(event.payload_hash.len(), 32, "the fingerprint is a SHA-256");
    let again = data::payload_fingerprint(&event.event_name, event.occurred_at, event.properties.as_ref());
    assert_eq!(event.payload_hash, again, "the fingerprint is deterministic");
    assert_eq!(data::truncate_to_micros(event.occurred_at), event.occurred_at, "stored to the microsecond");
}

/// In async mode, `events` publishes `EventMessage::from(&event)` as JSON and `worker` parses
/// it, checks it with the same rules and recomputes the fingerprint: an event that `events`
/// accepted must arrive as the same event, or it would end in the dead-letter topic.
pub fn check_through_pubsub(event: &NewEvent) {
    let published = serde_json::to_vec(&EventMessage::from(event)).expect("an event message serialises");
    let received: EventMessage = match serde_json::from_slice(&published) {
        Ok(message) => message,
        Err(e) => panic!("the worker cannot parse a published message: {e}: {}", String::from_utf8_lossy(&published)),
    };
    worker_checks(&received).unwrap_or_else(|m| panic!("the worker refuses a published event: {m}"));
    match received.into_new_event() {
        Ok(back) => {
            assert_eq!(back.payload_hash, event.payload_hash);
            assert_eq!(back.occurred_at, event.occurred_at);
            assert_eq!(
                (&back.tenant_id, &back.event_id, &back.event_name),
                (&event.tenant_id, &event.event_id, &event.event_name)
            );
        }
        Err(m) => panic!(
            "the worker refuses a message that events published: {m}\n  published: {}\n  properties as received: {:?}",
            String::from_utf8_lossy(&published),
            serde_json::from_slice::<Value>(&published).ok().and_then(|v| v.get("properties").map(Value::to_string)),
        ),
    }
}

/// The field checks of `worker`'s private `decode`, in the same order (functions/worker/src/lib.rs).
pub fn worker_checks(message: &EventMessage) -> Result<(), String> {
    check_event_name(&message.event_name).map_err(|m| format!("event_name {m}"))?;
    check_event_id(message.event_id.as_bytes()).map_err(|m| format!("event_id {m}"))?;
    if message.tenant_id.is_empty() {
        return Err("tenant_id is required".into());
    }
    if let Some(properties) = &message.properties {
        if !properties.is_object() {
            return Err("properties must be a JSON object".into());
        }
        check_properties(properties).map_err(|m| format!("properties {m}"))?;
    }
    Ok(())
}

/// What must hold for the errors `parse_event` returned for `body`: at least one, each with a
/// field and a message, each field named once, and every field name one of the event's fields,
/// `body`, or a key the client sent (never a value).
pub fn check_rejected(body: &Value, errors: &[FieldError]) {
    assert!(!errors.is_empty(), "an Err with no errors for {body}");
    let mut seen = std::collections::HashSet::new();
    for error in errors {
        assert!(!error.field.is_empty(), "an error without a field name: {error:?}");
        assert!(!error.message.is_empty(), "an error without a message: {error:?}");
        assert!(seen.insert(error.field.as_str()), "field {:?} reported twice: {errors:?}", error.field);
        let known = error.field == "body"
            || EVENT_FIELDS.contains(&error.field.as_str())
            || body.as_object().is_some_and(|fields| fields.contains_key(&error.field));
        assert!(known, "error names a field the body does not have: {error:?}");
    }
    if !body.is_object() {
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "body");
    }
}
