//! An event and its rules: the name, the identity, the time, the properties, and the new event
//! they make, with its payload fingerprint. Each part is a type that can only be built through
//! its check, so a `NewEvent` is valid by construction and its fingerprint cannot go stale
//! (its fields are private).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::field::FieldError;
use crate::fingerprint::Fingerprint;
use crate::tenant::TenantId;
use crate::time::{parse_timestamp, truncate_to_micros};

/// Longest event name, in characters.
pub const EVENT_NAME_MAX_CHARS: usize = 200;

/// Largest `properties` object, serialised.
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;

/// An event name: 1 to 200 characters, none of them control characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventName(String);

impl EventName {
    pub fn parse(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        let chars = name.chars().count();
        if chars == 0 || chars > EVENT_NAME_MAX_CHARS {
            return Err(format!("must be 1 to {EVENT_NAME_MAX_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event's identity within its tenant (the `Idempotency-Key`, the body's `event_id`, or one
/// the server makes): 1 to 255 visible ASCII characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    /// Checks raw bytes, as a header carries them.
    pub fn parse(raw: &[u8]) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 255 || !raw.iter().all(u8::is_ascii_graphic) {
            return Err("must be 1 to 255 visible ASCII characters");
        }
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    /// A new UUIDv7, for an event that brings no identity of its own (then every request is a
    /// new event).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_debug_display {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
text_debug_display!(EventName, EventId);

/// An event's `properties`: a JSON object of at most 32 KiB serialised, with no U+0000
/// anywhere (PostgreSQL's jsonb cannot hold it).
#[derive(Debug, Clone, PartialEq)]
pub struct Properties(Value);

impl Properties {
    pub fn parse(value: Value) -> Result<Self, String> {
        if !value.is_object() {
            return Err("must be a JSON object".into());
        }
        if value.to_string().len() > MAX_PROPERTIES_BYTES {
            return Err(format!("must be at most {MAX_PROPERTIES_BYTES} bytes as JSON"));
        }
        if contains_nul(&value) {
            return Err("must not contain the character U+0000".into());
        }
        Ok(Self(value))
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// The limits an event's time is held to when it is accepted, against the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestRules {
    /// How far ahead of `now` an event may be.
    pub max_future_skew: Duration,
    /// How many days of events are kept (`None`: all of them).
    pub retention_days: Option<u32>,
}

impl IngestRules {
    /// The oldest instant still kept at `now`: events before it are refused, and a count may
    /// not start before it (their partitions are dropped). `None` when everything is kept.
    pub fn retention_horizon(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.retention_days.map(|days| now - TimeDelta::days(i64::from(days)))
    }

    /// Checks `occurred_at` against the clock `now` as a new event: not too far ahead, not
    /// older than retention. The message is what a client sees.
    pub fn check_time(&self, occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
        let skew = TimeDelta::from_std(self.max_future_skew).unwrap_or(TimeDelta::MAX);
        if occurred_at > now + skew {
            return Err(format!("must not be more than {} seconds in the future", self.max_future_skew.as_secs()));
        }
        self.check_retained(occurred_at, now)
    }

    /// Checks only that `occurred_at` is within retention at `now` (the worker's check: an event
    /// accepted earlier was not in the future then).
    pub fn check_retained(&self, occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
        match (self.retention_horizon(now), self.retention_days) {
            (Some(horizon), Some(days)) if occurred_at < horizon => Err(format!(
                "must not be older than the retention period of {days} days (RETENTION_DAYS): events before {} are not kept",
                crate::time::format_timestamp(horizon)
            )),
            _ => Ok(()),
        }
    }
}

/// A valid event body, as a client sends it to `POST /events` or as a batch item.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBody {
    pub event_name: EventName,
    /// As sent, converted to UTC (sub-microsecond digits kept until the event is made).
    pub timestamp: DateTime<Utc>,
    pub properties: Option<Properties>,
    pub event_id: Option<EventId>,
}

/// The members of an event body.
pub const EVENT_FIELDS: [&str; 4] = ["event_name", "timestamp", "properties", "event_id"];

impl EventBody {
    /// Checks one body against `rules` at the clock `now`, reporting every broken rule.
    pub fn parse(body: Value, now: DateTime<Utc>, rules: &IngestRules) -> Result<Self, Vec<FieldError>> {
        let Value::Object(mut fields) = body else {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        };
        let mut errors: Vec<FieldError> = fields
            .keys()
            .filter(|k| !EVENT_FIELDS.contains(&k.as_str()))
            .map(|k| FieldError::unknown(k, "body"))
            .collect();

        let event_name = required_string(&mut fields, "event_name", &mut errors)
            .and_then(|name| EventName::parse(name).map_err(|m| errors.push(FieldError::new("event_name", m))).ok());

        let timestamp = required_string(&mut fields, "timestamp", &mut errors).and_then(|text| {
            let checked = parse_timestamp(&text).and_then(|ts| rules.check_time(ts, now).map(|()| ts));
            checked.map_err(|m| errors.push(FieldError::new("timestamp", m))).ok()
        });

        let properties = match fields.remove("properties") {
            None | Some(Value::Null) => None,
            Some(value) => Properties::parse(value).map_err(|m| errors.push(FieldError::new("properties", m))).ok(),
        };

        let event_id = match fields.remove("event_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => {
                EventId::parse(id.as_bytes()).map_err(|m| errors.push(FieldError::new("event_id", m))).ok()
            }
            Some(_) => {
                errors.push(FieldError::new("event_id", "must be a string"));
                None
            }
        };

        match (event_name, timestamp) {
            (Some(event_name), Some(timestamp)) if errors.is_empty() => {
                Ok(Self { event_name, timestamp, properties, event_id })
            }
            _ => Err(errors),
        }
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

/// An event ready to store: valid by construction, with the fingerprint of its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    tenant_id: TenantId,
    event_id: EventId,
    event_name: EventName,
    occurred_at: DateTime<Utc>,
    properties: Option<Properties>,
    fingerprint: Fingerprint,
}

impl NewEvent {
    /// The event; `occurred_at` is cut to the microsecond PostgreSQL stores, so a replay
    /// fingerprints the same as what was stored.
    pub fn new(
        tenant_id: TenantId,
        event_id: EventId,
        event_name: EventName,
        occurred_at: DateTime<Utc>,
        properties: Option<Properties>,
    ) -> Self {
        let occurred_at = truncate_to_micros(occurred_at);
        let fingerprint =
            Fingerprint::of(event_name.as_str(), occurred_at, properties.as_ref().map(Properties::as_value));
        Self { tenant_id, event_id, event_name, occurred_at, properties, fingerprint }
    }

    /// The event a body describes, for `tenant_id`, under `event_id`.
    pub fn from_body(tenant_id: TenantId, event_id: EventId, body: EventBody) -> Self {
        Self::new(tenant_id, event_id, body.event_name, body.timestamp, body.properties)
    }

    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }

    pub fn event_id(&self) -> &EventId {
        &self.event_id
    }

    pub fn event_name(&self) -> &EventName {
        &self.event_name
    }

    /// To the microsecond.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.occurred_at
    }

    pub fn properties(&self) -> Option<&Value> {
        self.properties.as_ref().map(Properties::as_value)
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// True when `stored`, the fingerprint stored with this identity, is this event's payload:
    /// in the current form, or in the first release's (events stored before numbers were
    /// compared by value keep that one).
    pub fn matches_stored(&self, stored: &[u8]) -> bool {
        stored == self.fingerprint.as_bytes() || stored == self.legacy_fingerprint().as_bytes()
    }

    /// The version-1 fingerprint of this payload (see `fingerprint`).
    pub fn legacy_fingerprint(&self) -> Fingerprint {
        Fingerprint::legacy(self.event_name.as_str(), self.occurred_at, self.properties())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: IngestRules = IngestRules { max_future_skew: Duration::from_secs(3600), retention_days: None };

    fn now() -> DateTime<Utc> {
        parse_timestamp("2026-11-26T12:00:00Z").expect("valid")
    }

    fn fields_of(body: Value) -> Vec<String> {
        EventBody::parse(body, now(), &RULES).expect_err("invalid").into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn event_names() {
        assert!(EventName::parse("signup").is_ok());
        assert!(EventName::parse("é".repeat(200)).is_ok());
        assert!(EventName::parse("é".repeat(201)).is_err());
        assert!(EventName::parse("").is_err());
        assert!(EventName::parse("sign\nup").is_err());
        assert!(EventName::parse("sign\u{7f}up").is_err());
    }

    #[test]
    fn event_ids_are_visible_ascii() {
        assert!(EventId::parse(b"abc-123_~").is_ok());
        assert!(EventId::parse(&[b'a'; 255]).is_ok());
        assert!(EventId::parse(&[b'a'; 256]).is_err());
        assert!(EventId::parse(b"").is_err());
        assert!(EventId::parse(b"a b").is_err());
        assert!(EventId::parse("é".as_bytes()).is_err());
        assert_eq!(uuid::Uuid::parse_str(EventId::generate().as_str()).map(|u| u.get_version_num()), Ok(7));
    }

    #[test]
    fn accepts_a_full_event() {
        let body = EventBody::parse(
            json!({"event_name": "signup", "timestamp": "2026-11-26T13:00:00+02:00", "properties": {"plan": "pro"}, "event_id": "e-1"}),
            now(),
            &RULES,
        )
        .expect("valid");
        assert_eq!(body.timestamp, parse_timestamp("2026-11-26T11:00:00Z").expect("valid"));
        assert_eq!(body.event_id.as_ref().map(EventId::as_str), Some("e-1"));
        assert_eq!(body.properties.as_ref().map(Properties::as_value), Some(&json!({"plan": "pro"})));
    }

    #[test]
    fn null_optional_fields_are_absent() {
        let body = EventBody::parse(
            json!({"event_name": "signup", "timestamp": "2026-11-26T11:00:00Z", "properties": null, "event_id": null}),
            now(),
            &RULES,
        )
        .expect("valid");
        assert_eq!((body.properties, body.event_id), (None, None));
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
        assert!(EventBody::parse(ok, now(), &RULES).is_ok());
        assert_eq!(fields_of(json!({"event_name": "a", "timestamp": "2026-11-26T13:00:00.000001Z"})), ["timestamp"]);
    }

    #[test]
    fn retention_refuses_older_events_and_names_the_limit() {
        let rules = IngestRules { retention_days: Some(30), ..RULES };
        let at = |ts: &str| json!({"event_name": "a", "timestamp": ts});
        assert!(EventBody::parse(at("2026-10-27T12:00:00Z"), now(), &rules).is_ok(), "exactly 30 days old");
        let errors = EventBody::parse(at("2026-10-27T11:59:59.999999Z"), now(), &rules).expect_err("too old");
        assert_eq!(errors[0].field, "timestamp");
        assert!(errors[0].message.contains("30 days (RETENTION_DAYS)"), "{}", errors[0].message);
        assert!(EventBody::parse(at("1970-01-01T00:00:00Z"), now(), &RULES).is_ok(), "no retention: any age");
        assert_eq!(rules.check_retained(parse_timestamp("2026-11-26T13:30:00Z").expect("valid"), now()), Ok(()));
    }

    #[test]
    fn properties_must_be_a_small_object_without_nul() {
        let base = |p: Value| json!({"event_name": "a", "timestamp": "2026-11-26T11:00:00Z", "properties": p});
        assert_eq!(fields_of(base(json!([1]))), ["properties"]);
        assert_eq!(fields_of(base(json!("x"))), ["properties"]);
        assert_eq!(fields_of(base(json!({"k": "x".repeat(MAX_PROPERTIES_BYTES)}))), ["properties"]);
        assert_eq!(fields_of(base(json!({"k": ["a\u{0}"]}))), ["properties"]);
        assert!(EventBody::parse(base(json!({"k": "x".repeat(MAX_PROPERTIES_BYTES - 10)})), now(), &RULES).is_ok());
    }

    #[test]
    fn a_new_event_is_cut_to_the_microsecond_and_fingerprinted() {
        let tenant = TenantId::parse("t").expect("valid");
        let make = |at: &str, properties: Value| {
            NewEvent::new(
                tenant.clone(),
                EventId::parse(b"e").expect("valid"),
                EventName::parse("signup").expect("valid"),
                parse_timestamp(at).expect("valid"),
                Some(Properties::parse(properties).expect("valid")),
            )
        };
        let a = make("2026-01-01T00:00:00.1234567Z", json!({"a": 1, "b": 2}));
        let b = make("2026-01-01T01:00:00.123456+01:00", serde_json::from_str(r#"{"b": 2, "a": 1}"#).expect("json"));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.occurred_at(), parse_timestamp("2026-01-01T00:00:00.123456Z").expect("valid"));
        assert!(a.matches_stored(b.fingerprint().as_bytes()));
        assert!(a.matches_stored(b.legacy_fingerprint().as_bytes()));
        assert!(!a.matches_stored(make("2026-01-01T00:00:00Z", json!({})).fingerprint().as_bytes()));
    }
}
