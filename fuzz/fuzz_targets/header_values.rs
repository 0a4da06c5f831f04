//! Values clients (or operators) put in headers and key documents:
//! - `Idempotency-Key` (and a body `event_id`): `domain::EventId::parse`;
//! - the tenant key document (`TENANT_KEYS` / Secret Manager): `TenantKeys::from_json` must
//!   never panic and its error must never echo a key;
//! - `traceparent` / `X-Cloud-Trace-Context`: `TraceContext::from_headers`.
//!
//! The whole input is each of these; for the trace headers, its first line is also tried as
//! `traceparent` and its second as `x-cloud-trace-context` together.

#![no_main]

use std::collections::HashMap;

use domain::EventId;
use libfuzzer_sys::fuzz_target;
use platform::TenantKeys;
use platform::telemetry::TraceContext;
use warp::http::{HeaderMap, HeaderName, HeaderValue};

fn idempotency_key(raw: &[u8]) {
    let visible = !raw.is_empty() && raw.len() <= 255 && raw.iter().all(u8::is_ascii_graphic);
    match EventId::parse(raw) {
        Ok(id) => {
            assert!(visible, "accepted {raw:?}");
            assert_eq!(id.as_str().as_bytes(), raw, "the identity is stored as sent");
            // Every accepted identity can be sent back as a header value.
            assert!(HeaderValue::from_bytes(id.as_str().as_bytes()).is_ok());
        }
        Err(message) => {
            assert!(!visible, "refused {raw:?}: {message}");
            assert!(!message.is_empty());
        }
    }
}

/// Every string literal in `text`, whether or not `text` is valid JSON, as (raw, decoded,
/// is_object_key). A string followed by `:` is in tenant-id position.
fn string_literals(text: &str) -> Vec<(String, Option<String>, bool)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < bytes.len() && bytes[j] != b'"' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        let end = j.min(bytes.len());
        let raw = String::from_utf8_lossy(&bytes[start..end]).into_owned();
        let decoded = serde_json::from_str::<String>(&format!("\"{raw}\"")).ok();
        let rest = bytes.get(end + 1..).unwrap_or_default();
        let is_key = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':');
        found.push((raw, decoded, is_key));
        i = end + 1;
    }
    found
}

/// The fixed wording of the key document's errors (platform::tenant_keys::KeyDocumentError and
/// its description of JSON errors), the parts around what each names.
const WORDING: [&str; 16] = [
    "not a JSON object of tenant ids to arrays of keys: ",
    "malformed JSON",
    "wrong shape",
    "unreadable",
    " at line ",
    " column ",
    "it names no tenant",
    "tenant id ",
    " must be 1-64 characters of letters, digits, '-', '_' or '.'",
    "tenants ",
    "tenant ",
    " has no keys",
    " has a key that is not 8-256 visible ASCII characters other than a comma",
    " and ",
    " share a key; each key must map to exactly one tenant",
    " is given more than once",
];

/// The number in `TenantKeys { keys: N, .. }`.
fn keys_count(debug: &str) -> String {
    debug.chars().filter(char::is_ascii_digit).collect()
}

fn key_document(text: &str) {
    let literals = string_literals(text);
    match TenantKeys::from_json(text) {
        Ok(keys) => {
            let tenants = keys.tenants();
            assert!(!tenants.is_empty(), "a valid document names a tenant");
            assert!(tenants.windows(2).all(|w| w[0].as_str() < w[1].as_str()), "tenants() is sorted and unique");
            // Every key of the document (as serde reads it: the last of duplicate tenants
            // wins) authenticates as its tenant.
            let document: HashMap<String, Vec<String>> = serde_json::from_str(text).expect("accepted, so it parses");
            for (tenant, presented) in &document {
                for key in presented {
                    let found = keys.tenant_for(key.as_bytes());
                    assert_eq!(found.as_ref().map(|t| t.as_str()), Some(tenant.as_str()), "key of {tenant:?}");
                }
            }
            assert!(keys.tenant_for(b"").is_none(), "the empty key authenticates");
            // Debug shows how many keys, in its own fixed wording, and nothing else.
            let debug = format!("{keys:?}");
            let shown = debug.split(['{', '}', ',', ':', ' ']).filter(|part| !part.is_empty()).collect::<Vec<_>>();
            let count = keys_count(&debug);
            assert_eq!(shown, ["TenantKeys", "keys", count.as_str(), ".."], "Debug of TenantKeys: {debug}");
        }
        Err(err) => {
            let message = err.to_string();
            assert!(!message.is_empty());
            // The errors name the tenant at fault (`{tenant:?}`), which is not a secret, in their
            // own fixed wording, which is no echo even when the document happens to quote it. Cut
            // both out of the message; no string of 8+ characters from the document may be left
            // in what remains, raw or as Debug would escape it.
            let tenant_ids: Vec<String> = literals
                .iter()
                .filter(|(_, _, is_key)| *is_key)
                .filter_map(|(_, decoded, _)| decoded.clone())
                .map(|t| format!("{t:?}"))
                .collect();
            let mut rest = vec![message.clone()];
            for fixed in tenant_ids.iter().map(String::as_str).chain(WORDING).filter(|f| !f.is_empty()) {
                rest = rest.iter().flat_map(|part| part.split(fixed).map(str::to_owned)).collect();
            }
            for (raw, decoded, is_key) in &literals {
                if *is_key {
                    continue;
                }
                for secret in [Some(raw), decoded.as_ref()].into_iter().flatten().filter(|s| s.chars().count() >= 8) {
                    let escaped = format!("{secret:?}");
                    let escaped = &escaped[1..escaped.len() - 1];
                    assert!(
                        !rest.iter().any(|part| part.contains(secret.as_str()) || part.contains(escaped)),
                        "the key document error echoes {secret:?}: {message}"
                    );
                }
            }
        }
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn trace_headers(pairs: &[(&'static str, &[u8])]) {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        // A value hyper would not accept never reaches the service.
        let Ok(value) = HeaderValue::from_bytes(value) else { return };
        headers.insert(HeaderName::from_static(name), value);
    }
    let Some(context) = TraceContext::from_headers(&headers) else { return };
    assert!(is_lower_hex(&context.trace_id, 32), "trace_id {:?} from {pairs:?}", context.trace_id);
    assert!(context.trace_id.bytes().any(|b| b != b'0'), "all-zero trace_id from {pairs:?}");
    if let Some(span_id) = &context.span_id {
        assert!(is_lower_hex(span_id, 16), "span_id {span_id:?} from {pairs:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    idempotency_key(data);
    if let Ok(text) = std::str::from_utf8(data) {
        key_document(text);
    }
    trace_headers(&[("traceparent", data)]);
    trace_headers(&[("x-cloud-trace-context", data)]);
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let (first, second) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
    trace_headers(&[("traceparent", first), ("x-cloud-trace-context", second)]);
});
