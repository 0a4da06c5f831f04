//! The normalised event as it travels through Pub/Sub in async mode: `events` publishes it,
//! `worker` inserts it with the same idempotent insert as inline mode. It carries its payload
//! fingerprint, which the receiver recomputes, so a message altered on the way is refused.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::NewEvent;

/// One event, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMessage {
    pub tenant_id: String,
    pub event_id: String,
    pub event_name: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<serde_json::Value>,
    /// The payload fingerprint, lowercase hex.
    pub payload_hash: String,
}

impl From<&NewEvent> for EventMessage {
    fn from(event: &NewEvent) -> Self {
        Self {
            tenant_id: event.tenant_id.clone(),
            event_id: event.event_id.clone(),
            event_name: event.event_name.clone(),
            occurred_at: event.occurred_at,
            properties: event.properties.clone(),
            payload_hash: event.payload_hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

impl EventMessage {
    /// The event to insert, if its fingerprint matches its contents.
    pub fn into_new_event(self) -> Result<NewEvent, String> {
        let claimed = self.payload_hash.clone();
        let event = NewEvent::new(self.tenant_id, self.event_id, self.event_name, self.occurred_at, self.properties);
        // A message published by the previous release carries a version-1 fingerprint.
        let legacy = domain::Fingerprint::legacy(&event.event_name, event.occurred_at, event.properties.as_ref());
        if EventMessage::from(&event).payload_hash != claimed && legacy.to_hex() != claimed {
            return Err("payload_hash does not match the event".into());
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T10:00:00.123456Z").expect("valid").with_timezone(&Utc);
        let event = NewEvent::new("acme".into(), "e-1".into(), "signup".into(), at, Some(serde_json::json!({"a": 1})));
        let json = serde_json::to_string(&EventMessage::from(&event)).expect("serialise");
        let back: EventMessage = serde_json::from_str(&json).expect("parse");
        let again = back.clone().into_new_event().expect("fingerprint matches");
        assert_eq!(
            (again.event_id, again.occurred_at, again.payload_hash),
            (event.event_id, event.occurred_at, event.payload_hash)
        );

        // A number serde_json parses inexactly without `float_roundtrip` (found by fuzzing):
        // the trip through the message must keep it, or the fingerprint no longer matches.
        let properties: serde_json::Value = serde_json::from_str(r#"{"y": 1.8950878025539994264e+285}"#).expect("json");
        let float = NewEvent::new("acme".into(), "e-2".into(), "signup".into(), at, Some(properties));
        let wire = serde_json::to_vec(&EventMessage::from(&float)).expect("serialise");
        let received: EventMessage = serde_json::from_slice(&wire).expect("parse");
        assert!(received.into_new_event().is_ok(), "the fingerprint survives the trip");

        let mut tampered = back;
        tampered.event_name = "login".into();
        assert!(tampered.into_new_event().is_err());
    }
}
