//! The event as it travels through Pub/Sub in async mode: `events` publishes it, `worker`
//! decodes it with the same rules as a request and inserts it. It carries its payload
//! fingerprint, which the receiver recomputes, so a message altered on the way is refused.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{EventId, EventName, IngestRules, NewEvent, Properties};
use crate::json::Document;
use crate::tenant::TenantId;

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
            tenant_id: event.tenant_id().to_string(),
            event_id: event.event_id().to_string(),
            event_name: event.event_name().to_string(),
            occurred_at: event.occurred_at(),
            properties: event.properties().cloned(),
            payload_hash: event.fingerprint().to_hex(),
        }
    }
}

/// Why a message can never be stored: the part of it that is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct MessageError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str) -> impl Fn(String) -> MessageError {
    move |reason| MessageError { field, reason }
}

impl EventMessage {
    /// The event in a message's data (JSON), checked by every rule a request is checked by,
    /// against the fingerprint it carries, and (at the clock `now`) against retention: an
    /// event accepted just before its day expired is refused once it has.
    pub fn decode(data: &[u8], now: DateTime<Utc>, rules: &IngestRules) -> Result<NewEvent, MessageError> {
        let document = Document::parse(data).map_err(|e| refuse("message.data")(format!("is not JSON: {e}")))?;
        if let Some(path) = document.duplicates.first() {
            return Err(refuse("message.data")(format!("gives {path} more than once")));
        }
        let message: Self = serde_json::from_value(document.value)
            .map_err(|e| refuse("message.data")(format!("is not an event: {e}")))?;
        let event = message.into_new_event()?;
        rules.check_retained(event.occurred_at(), now).map_err(refuse("occurred_at"))?;
        Ok(event)
    }

    /// The event, if every part is valid and the fingerprint matches its contents.
    pub fn into_new_event(self) -> Result<NewEvent, MessageError> {
        let tenant_id = TenantId::parse(&self.tenant_id).map_err(|m| refuse("tenant_id")(m.into()))?;
        let event_id = EventId::parse(self.event_id.as_bytes()).map_err(|m| refuse("event_id")(m.into()))?;
        let event_name = EventName::parse(self.event_name).map_err(refuse("event_name"))?;
        let properties = self.properties.map(Properties::parse).transpose().map_err(refuse("properties"))?;
        let event = NewEvent::new(tenant_id, event_id, event_name, self.occurred_at, properties);
        // A message published by the previous release carries a version-1 fingerprint.
        if event.fingerprint().to_hex() != self.payload_hash && event.legacy_fingerprint().to_hex() != self.payload_hash
        {
            return Err(refuse("payload_hash")("does not match the event".into()));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_timestamp;

    const RULES: IngestRules =
        IngestRules { max_future_skew: std::time::Duration::from_secs(3600), retention_days: None };

    fn now() -> DateTime<Utc> {
        parse_timestamp("2026-01-02T00:00:00Z").expect("valid")
    }

    fn event(properties: serde_json::Value) -> NewEvent {
        NewEvent::new(
            TenantId::parse("acme").expect("valid"),
            EventId::parse(b"e-1").expect("valid"),
            EventName::parse("signup").expect("valid"),
            parse_timestamp("2026-01-01T10:00:00.123456Z").expect("valid"),
            Some(Properties::parse(properties).expect("valid")),
        )
    }

    #[test]
    fn round_trips_and_detects_tampering() {
        let original = event(serde_json::json!({"a": 1}));
        let wire = serde_json::to_vec(&EventMessage::from(&original)).expect("serialise");
        assert_eq!(EventMessage::decode(&wire, now(), &RULES), Ok(original.clone()));

        // A number serde_json parses inexactly without `float_roundtrip` (found by fuzzing):
        // the trip through the message must keep it, or the fingerprint no longer matches.
        let float = event(serde_json::from_str(r#"{"y": 1.8950878025539994264e+285}"#).expect("json"));
        let wire = serde_json::to_vec(&EventMessage::from(&float)).expect("serialise");
        assert!(EventMessage::decode(&wire, now(), &RULES).is_ok(), "the fingerprint survives the trip");

        let mut tampered = EventMessage::from(&original);
        tampered.event_name = "login".into();
        assert_eq!(tampered.into_new_event().map_err(|e| e.field), Err("payload_hash"));
        let mut bad_tenant = EventMessage::from(&original);
        bad_tenant.tenant_id = String::new();
        assert_eq!(bad_tenant.into_new_event().map_err(|e| e.field), Err("tenant_id"));
    }

    #[test]
    fn an_event_past_retention_is_refused() {
        let wire = serde_json::to_vec(&EventMessage::from(&event(serde_json::json!({})))).expect("serialise");
        let rules = IngestRules { retention_days: Some(1), ..RULES };
        assert!(EventMessage::decode(&wire, now(), &rules).is_ok(), "14 hours old");
        let later = now() + chrono::TimeDelta::days(1);
        assert_eq!(EventMessage::decode(&wire, later, &rules).map_err(|e| e.field), Err("occurred_at"));
    }

    #[test]
    fn a_message_of_the_previous_release_verifies() {
        let original = event(serde_json::json!({"seats": 3.0}));
        let mut message = EventMessage::from(&original);
        message.payload_hash = original.legacy_fingerprint().to_hex();
        assert_eq!(message.into_new_event(), Ok(original));
    }

    #[test]
    fn ambiguous_or_malformed_data_is_refused() {
        let wire =
            String::from_utf8(serde_json::to_vec(&EventMessage::from(&event(serde_json::json!({})))).expect("json"))
                .expect("utf-8");
        let twice = wire.replacen(r#""event_name":"signup""#, r#""event_name":"signup","event_name":"login""#, 1);
        assert_eq!(EventMessage::decode(twice.as_bytes(), now(), &RULES).map_err(|e| e.field), Err("message.data"));
        assert!(EventMessage::decode(b"not json", now(), &RULES).is_err());
        assert!(EventMessage::decode(br#"{"tenant_id": "acme"}"#, now(), &RULES).is_err());
    }
}
