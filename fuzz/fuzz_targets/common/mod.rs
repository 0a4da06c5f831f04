//! Invariants shared by the fuzz targets. Each target calls the service's public parsing and
//! validation code (the `domain` crate) and then checks what the contract promises about the
//! result, so a target fails on a wrong answer, not only on a panic.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use domain::event::EVENT_FIELDS;
use domain::time::{parse_timestamp, truncate_to_micros};
use domain::{
    EventBody, EventId, EventMessage, EventName, FieldError, Fingerprint, IngestRules, NewEvent, Properties, TenantId,
};
use serde_json::Value;

/// The default `MAX_FUTURE_SKEW_SECS`.
pub const RULES: IngestRules = IngestRules { max_future_skew: Duration::from_secs(3600), retention_days: None };

/// A fixed server clock, so a crash reproduces whatever the date.
pub fn now() -> DateTime<Utc> {
    parse_timestamp("2026-11-26T12:00:00Z").expect("a valid clock")
}

/// What must hold for an event body `EventBody::parse` accepted from `body` at `now`.
pub fn check_accepted(body: &Value, input: &EventBody, now: DateTime<Utc>) {
    assert!(EventName::parse(input.event_name.as_str()).is_ok(), "an accepted event name passes its own check");
    assert_eq!(body.get("event_name").and_then(Value::as_str), Some(input.event_name.as_str()));
    let skew = TimeDelta::from_std(RULES.max_future_skew).expect("skew fits");
    assert!(input.timestamp <= now + skew, "accepted a timestamp beyond the future skew: {}", input.timestamp);
    assert!((1..=9999).contains(&input.timestamp.year()), "accepted year {}", input.timestamp.year());
    if let Some(properties) = &input.properties {
        assert!(properties.as_value().is_object(), "accepted non-object properties");
        assert!(Properties::parse(properties.as_value().clone()).is_ok(), "accepted properties pass their own check");
        assert_eq!(body.get("properties"), Some(properties.as_value()), "properties changed on the way");
    }
    if let Some(id) = &input.event_id {
        assert_eq!(EventId::parse(id.as_str().as_bytes()).as_ref(), Ok(id), "accepted event_id {id:?}");
    }

    let event_id = input
        .event_id
        .clone()
        .unwrap_or_else(|| EventId::parse(b"0197a1c2-0000-7000-8000-000000000000").expect("valid"));
    let event = NewEvent::from_body(TenantId::parse("acme").expect("valid"), event_id, input.clone());
    check_new_event(&event);
    assert!(
        event.occurred_at() <= input.timestamp && input.timestamp - event.occurred_at() < TimeDelta::microseconds(1)
    );
    check_through_pubsub(&event);
}

/// What must hold for any event about to be inserted.
pub fn check_new_event(event: &NewEvent) {
    let again = Fingerprint::of(event.event_name().as_str(), event.occurred_at(), event.properties());
    assert_eq!(event.fingerprint(), &again, "the fingerprint is deterministic");
    assert!(event.matches_stored(again.as_bytes()));
    assert_eq!(truncate_to_micros(event.occurred_at()), event.occurred_at(), "stored to the microsecond");
}

/// In async mode, `events` publishes `EventMessage::from(&event)` as JSON and `worker` decodes
/// it with the same rules and recomputes the fingerprint: an event that `events` accepted must
/// arrive as the same event, or it would end in the dead-letter topic.
pub fn check_through_pubsub(event: &NewEvent) {
    let published = serde_json::to_vec(&EventMessage::from(event)).expect("an event message serialises");
    match EventMessage::decode(&published, now(), &RULES) {
        Ok(back) => assert_eq!(&back, event),
        Err(m) => panic!(
            "the worker refuses a message that events published: {m}\n  published: {}",
            String::from_utf8_lossy(&published),
        ),
    }
}

/// What must hold for the errors `EventBody::parse` returned for `body`: at least one, each
/// with a field and a message, each field named once, and every field name one of the event's
/// fields, `body`, or a key the client sent (never a value).
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
