//! The event body and its validation. Every rule of the contract is checked here and every
//! broken rule is reported, each naming its field, so a client fixes a request in one round.

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::FieldError;
use platform::fields::{check_event_id, check_event_name, check_properties, parse_timestamp};
use serde_json::{Map, Value};

/// A valid event body.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput {
    pub event_name: String,
    pub timestamp: DateTime<Utc>,
    pub properties: Option<Value>,
    pub event_id: Option<String>,
}

const FIELDS: [&str; 4] = ["event_name", "timestamp", "properties", "event_id"];

/// Validates one event body against the clock `now`.
pub fn parse_event(body: Value, now: DateTime<Utc>, max_future_skew: Duration) -> Result<EventInput, Vec<FieldError>> {
    let Value::Object(mut fields) = body else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors: Vec<FieldError> =
        fields.keys().filter(|k| !FIELDS.contains(&k.as_str())).map(|k| FieldError::unknown(k, "body")).collect();

    let event_name = required_string(&mut fields, "event_name", &mut errors).and_then(|name| {
        check_event_name(&name).map(|()| name).map_err(|m| errors.push(FieldError::new("event_name", m))).ok()
    });

    let timestamp = required_string(&mut fields, "timestamp", &mut errors).and_then(|text| {
        let checked = parse_timestamp(&text).and_then(|ts| {
            let skew = chrono::TimeDelta::from_std(max_future_skew).unwrap_or(chrono::TimeDelta::MAX);
            if ts > now + skew {
                Err(format!("must not be more than {} seconds in the future", max_future_skew.as_secs()))
            } else {
                Ok(ts)
            }
        });
        checked.map_err(|m| errors.push(FieldError::new("timestamp", m))).ok()
    });

    let properties = match fields.remove("properties") {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => match check_properties(&value) {
            Ok(()) => Some(value),
            Err(m) => {
                errors.push(FieldError::new("properties", m));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("properties", "must be a JSON object"));
            None
        }
    };

    let event_id = match fields.remove("event_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => match check_event_id(id.as_bytes()) {
            Ok(id) => Some(id),
            Err(m) => {
                errors.push(FieldError::new("event_id", m));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("event_id", "must be a string"));
            None
        }
    };

    match (event_name, timestamp) {
        (Some(event_name), Some(timestamp)) if errors.is_empty() => {
            Ok(EventInput { event_name, timestamp, properties, event_id })
        }
        _ => Err(errors),
    }
}

fn required_string(fields: &mut Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match fields.remove(name) {
        Some(Value::String(s)) => Some(s),
        None | Some(Value::Null) => {
            errors.push(FieldError::new(name, "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(name, "must be a string"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::fields::MAX_PROPERTIES_BYTES;
    use serde_json::json;

    const SKEW: Duration = Duration::from_secs(3600);

    fn now() -> DateTime<Utc> {
        parse_timestamp("2026-11-26T12:00:00Z").expect("valid")
    }

    fn fields_of(body: Value) -> Vec<String> {
        parse_event(body, now(), SKEW).expect_err("invalid").into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn accepts_a_full_event() {
        let input = parse_event(
            json!({"event_name": "signup", "timestamp": "2026-11-26T13:00:00+02:00", "properties": {"plan": "pro"}, "event_id": "e-1"}),
            now(),
            SKEW,
        )
        .expect("valid");
        assert_eq!(input.timestamp, parse_timestamp("2026-11-26T11:00:00Z").expect("valid"));
        assert_eq!(input.event_id.as_deref(), Some("e-1"));
        assert_eq!(input.properties, Some(json!({"plan": "pro"})));
    }

    #[test]
    fn null_optional_fields_are_absent() {
        let input = parse_event(
            json!({"event_name": "signup", "timestamp": "2026-11-26T11:00:00Z", "properties": null, "event_id": null}),
            now(),
            SKEW,
        )
        .expect("valid");
        assert_eq!((input.properties, input.event_id), (None, None));
    }

    #[test]
    fn reports_every_broken_field() {
        assert_eq!(fields_of(json!({})), ["event_name", "timestamp"]);
        assert_eq!(
            fields_of(json!({"event_name": 3, "timestamp": "soon", "extra": 1})),
            ["extra", "event_name", "timestamp"]
        );
        assert_eq!(fields_of(json!([1])), ["body"]);
    }

    #[test]
    fn future_skew_is_bounded() {
        let ok = json!({"event_name": "a", "timestamp": "2026-11-26T13:00:00Z"});
        assert!(parse_event(ok, now(), SKEW).is_ok());
        assert_eq!(fields_of(json!({"event_name": "a", "timestamp": "2026-11-26T13:00:00.000001Z"})), ["timestamp"]);
    }

    #[test]
    fn properties_must_be_a_small_object_without_nul() {
        let base = |p: Value| json!({"event_name": "a", "timestamp": "2026-11-26T11:00:00Z", "properties": p});
        assert_eq!(fields_of(base(json!([1]))), ["properties"]);
        assert_eq!(fields_of(base(json!("x"))), ["properties"]);
        assert_eq!(fields_of(base(json!({"k": "x".repeat(MAX_PROPERTIES_BYTES)}))), ["properties"]);
        assert_eq!(fields_of(base(json!({"k": ["a\u{0}"]}))), ["properties"]);
        assert!(parse_event(base(json!({"k": "x".repeat(MAX_PROPERTIES_BYTES - 10)})), now(), SKEW).is_ok());
    }
}
