//! The payload fingerprint: what tells a replay (same identity, same payload: 200) from a
//! reused key (same identity, another payload: 422).
//!
//! The payload is the event name, the time to the microsecond, and the properties. Two
//! payloads are the same when they mean the same JSON: member order does not matter, and
//! numbers are compared by value, as PostgreSQL's jsonb and RFC 8785 compare them, so `1`,
//! `1.0`, `1e0` and `10e-1` are one number (a JavaScript client prints `1.0` as `1`). The
//! canonical text hashed is RFC 8785 in spirit: members sorted by name (code point order), no
//! insignificant whitespace, strings escaped as serde_json escapes them, and each number in one
//! form: an integral value below 2^64 in magnitude as its decimal digits (`100`, `-2`), zero as
//! `0`, anything else as the shortest scientific form that reads back as the same double
//! (`5e-1`, `1.8446744073709552e19`). Numbers are the values the service stores: integers that
//! fit 64 bits exactly, everything else as a double.
//!
//! Version 1 (before this canonical form) hashed the properties as serde_json printed them,
//! where `1` and `1.0` differ. Events stored then keep their version-1 fingerprint; a payload
//! matches a stored fingerprint of either version, so their replays are still duplicates.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

/// SHA-256 of a payload, in the current canonical form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// Tells the version-2 digest apart from any version-1 preimage.
const VERSION_2: &[u8] = b"payload-v2\0";

impl Fingerprint {
    /// The fingerprint of a payload. `occurred_at` counts to the microsecond.
    pub fn of(event_name: &str, occurred_at: DateTime<Utc>, properties: Option<&Value>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(VERSION_2);
        hash_payload(&mut hasher, event_name, occurred_at, properties, NumberForm::Canonical);
        Self(hasher.finalize().into())
    }

    /// The version-1 fingerprint of the same payload, as the first release stored it.
    pub fn legacy(event_name: &str, occurred_at: DateTime<Utc>, properties: Option<&Value>) -> Self {
        let mut hasher = Sha256::new();
        hash_payload(&mut hasher, event_name, occurred_at, properties, NumberForm::SerdeJson);
        Self(hasher.finalize().into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From stored bytes; `None` unless there are exactly 32.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Lowercase hex, 64 digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
    }
}

/// How numbers are written into the hashed text.
#[derive(Clone, Copy)]
enum NumberForm {
    /// One form per value (version 2).
    Canonical,
    /// As serde_json prints them (version 1).
    SerdeJson,
}

fn hash_payload(
    hasher: &mut Sha256,
    event_name: &str,
    occurred_at: DateTime<Utc>,
    properties: Option<&Value>,
    numbers: NumberForm,
) {
    // Each part is length-prefixed so no two payloads share an encoding.
    hasher.update((event_name.len() as u64).to_be_bytes());
    hasher.update(event_name.as_bytes());
    hasher.update(occurred_at.timestamp_micros().to_be_bytes());
    match properties {
        None => hasher.update([0u8]),
        Some(value) => {
            let mut text = String::new();
            write_value(&mut text, value, numbers);
            hasher.update([1u8]);
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        }
    }
}

fn write_value(out: &mut String, value: &Value, numbers: NumberForm) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n, numbers),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, numbers);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // Sorted here rather than relying on serde_json's map order, which a dependency
            // enabling its `preserve_order` feature would change.
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_value(out, member, numbers);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    // serde_json's escaping of a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// 2^64: below it in magnitude, an integral double is exactly an integer of 64 bits or fewer.
const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;

fn write_number(out: &mut String, n: &Number, numbers: NumberForm) {
    if let NumberForm::SerdeJson = numbers {
        let _ = write!(out, "{n}");
        return;
    }
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        if f == 0.0 {
            out.push('0');
        } else if f.fract() == 0.0 && f.abs() < TWO_TO_64 {
            let _ = write!(out, "{}", f as i128);
        } else {
            let _ = write!(out, "{f:e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("valid").with_timezone(&Utc)
    }

    fn canonical(json: &str) -> String {
        let mut out = String::new();
        write_value(&mut out, &serde_json::from_str(json).expect("json"), NumberForm::Canonical);
        out
    }

    #[test]
    fn one_text_per_meaning() {
        assert_eq!(canonical(r#"{"b": [1.0, 1e0, 10e-1, -0.0, 0], "a": "x"}"#), r#"{"a":"x","b":[1,1,1,0,0]}"#);
        assert_eq!(canonical("[0.5, 5e-1, 1.5E3, -2.0, 1e300]"), "[5e-1,5e-1,1500,-2,1e300]");
        assert_eq!(
            canonical("[18446744073709551615, -9223372036854775808]"),
            "[18446744073709551615,-9223372036854775808]"
        );
        assert_eq!(
            canonical("[18446744073709551616.0, 1.8446744073709552e19]"),
            "[1.8446744073709552e19,1.8446744073709552e19]"
        );
        assert_eq!(canonical(r#"{"s": "é\n\"", "é": null, "e": true}"#), r#"{"e":true,"s":"é\n\"","é":null}"#);
    }

    #[test]
    fn numbers_equal_by_value_share_a_fingerprint() {
        let t = at("2026-01-01T00:00:00Z");
        let of = |json: &str| Fingerprint::of("signup", t, Some(&serde_json::from_str(json).expect("json")));
        assert_eq!(of(r#"{"x": 1, "y": {"z": [2]}}"#), of(r#"{"y": {"z": [2.0]}, "x": 1e0}"#));
        assert_ne!(of(r#"{"x": 1}"#), of(r#"{"x": 1.5}"#));
        assert_ne!(of(r#"{"x": 1}"#), of(r#"{"x": "1"}"#));
        assert_ne!(of(r#"{"x": 9007199254740993}"#), of(r#"{"x": 9007199254740992}"#));
    }

    #[test]
    fn every_part_of_the_payload_counts() {
        let t = at("2026-01-01T00:00:00Z");
        let base = Fingerprint::of("signup", t, None);
        assert_ne!(base, Fingerprint::of("signup", t, Some(&serde_json::json!({}))));
        assert_ne!(base, Fingerprint::of("signups", t, None));
        assert_ne!(base, Fingerprint::of("signup", t + chrono::TimeDelta::microseconds(1), None));
    }

    #[test]
    fn version_one_is_what_the_first_release_stored() {
        // Computed by the first release for this payload.
        let properties = serde_json::json!({"plan": "pro", "seats": 3.0});
        let legacy = Fingerprint::legacy("signup", at("2026-01-01T10:00:00Z"), Some(&properties));
        let mut hasher = Sha256::new();
        let text = r#"{"plan":"pro","seats":3.0}"#;
        hasher.update(6u64.to_be_bytes());
        hasher.update(b"signup");
        hasher.update(1_767_261_600_000_000i64.to_be_bytes());
        hasher.update([1u8]);
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
        assert_eq!(legacy.as_bytes(), &<[u8; 32]>::from(hasher.finalize()));
        assert_ne!(legacy, Fingerprint::of("signup", at("2026-01-01T10:00:00Z"), Some(&properties)));
    }
}
