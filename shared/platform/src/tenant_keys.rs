//! Tenant API keys. The key document maps each tenant to its keys
//! (`{"acme": ["key-1", "key-2"]}`, several keys per tenant for rotation). Keys are kept only
//! as SHA-256 digests, looked up by digest and compared in constant time; a key is never
//! logged, printed or echoed in an error.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

pub use domain::TenantId;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a key document was refused. Never carries a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDocumentError {
    #[error("not a JSON object of tenant ids to arrays of keys: {0}")]
    Shape(String),
    #[error("it names no tenant")]
    Empty,
    #[error("tenant id {0:?} must be 1-64 characters of letters, digits, '-', '_' or '.'")]
    BadTenantId(String),
    #[error("tenant {0:?} has no keys")]
    NoKeys(String),
    #[error("tenant {0:?} has a key that is not 8-256 visible ASCII characters other than a comma")]
    BadKey(String),
    #[error("tenants {0:?} and {1:?} share a key; each key must map to exactly one tenant")]
    SharedKey(String, String),
    #[error("tenant {0:?} is given more than once")]
    DuplicateTenant(String),
}

type KeyIndex = HashMap<[u8; 32], TenantId>;

/// The current set of keys, shared by every request; cheap to clone.
#[derive(Clone)]
pub struct TenantKeys {
    index: Arc<RwLock<Arc<KeyIndex>>>,
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKeys").field("keys", &self.snapshot().len()).finish_non_exhaustive()
    }
}

impl TenantKeys {
    /// Parses and checks a key document.
    pub fn from_json(document: &str) -> Result<Self, KeyDocumentError> {
        Ok(Self { index: Arc::new(RwLock::new(Arc::new(parse_document(document)?))) })
    }

    /// A set that names no tenant: every key is refused.
    pub fn none() -> Self {
        Self { index: Arc::new(RwLock::new(Arc::new(KeyIndex::new()))) }
    }

    /// Replaces the whole set with a newly parsed document (rotation). On error the current
    /// set stays in force.
    pub fn replace_from_json(&self, document: &str) -> Result<(), KeyDocumentError> {
        let fresh = Arc::new(parse_document(document)?);
        *self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// The tenant that owns `presented`, if any.
    pub fn tenant_for(&self, presented: &[u8]) -> Option<TenantId> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let index = self.snapshot();
        // The map is keyed by digest, so its lookup time reveals nothing about the key itself;
        // the constant-time comparison guards the final match all the same.
        index
            .get_key_value(&digest)
            .filter(|(stored, _)| bool::from(stored.ct_eq(&digest)))
            .map(|(_, tenant)| tenant.clone())
    }

    /// Ids of every tenant, sorted.
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> = self.snapshot().values().cloned().collect();
        tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        tenants.dedup();
        tenants
    }

    fn snapshot(&self) -> Arc<KeyIndex> {
        self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

fn parse_document(document: &str) -> Result<KeyIndex, KeyDocumentError> {
    let parsed = domain::json::Document::parse(document.as_bytes())
        .map_err(|e| KeyDocumentError::Shape(describe_json_error(&e)))?;
    // A tenant given twice would keep one of its key lists silently.
    if let Some(duplicate) = parsed.duplicates.first() {
        return Err(KeyDocumentError::DuplicateTenant(duplicate.to_string()));
    }
    let parsed: HashMap<String, Vec<String>> =
        serde_json::from_value(parsed.value).map_err(|e| KeyDocumentError::Shape(describe_json_error(&e)))?;
    if parsed.is_empty() {
        return Err(KeyDocumentError::Empty);
    }
    let mut index = KeyIndex::new();
    for (tenant, keys) in parsed {
        let Ok(id) = TenantId::parse(&tenant) else {
            return Err(KeyDocumentError::BadTenantId(tenant));
        };
        if keys.is_empty() {
            return Err(KeyDocumentError::NoKeys(tenant));
        }
        for key in keys {
            // No commas: a comma-separated list is what a proxy makes of two X-API-Key headers,
            // and it must never name a tenant.
            if !(8..=256).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                return Err(KeyDocumentError::BadKey(tenant));
            }
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            if let Some(other) = index.insert(digest, id.clone())
                && other != id
            {
                let (a, b) = if other.as_str() < id.as_str() { (other, id) } else { (id, other) };
                return Err(KeyDocumentError::SharedKey(a.to_string(), b.to_string()));
            }
        }
    }
    Ok(index)
}

/// serde_json's message without anything quoted from the input, which may be a key.
fn describe_json_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match err.classify() {
        Category::Syntax | Category::Eof => "malformed JSON",
        Category::Data => "wrong shape",
        Category::Io => "unreadable",
    };
    match err.line() {
        // Raised while reading the parsed value, which has no position.
        0 => what.to_owned(),
        line => format!("{what} at line {line} column {}", err.column()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_key_to_its_tenant() {
        let keys = TenantKeys::from_json(r#"{"acme": ["key-one-1", "key-one-2"], "globex": ["key-three"]}"#)
            .expect("valid document");
        assert_eq!(keys.tenant_for(b"key-one-1").map(|t| t.to_string()).as_deref(), Some("acme"));
        assert_eq!(keys.tenant_for(b"key-one-2").map(|t| t.to_string()).as_deref(), Some("acme"));
        assert_eq!(keys.tenant_for(b"key-three").map(|t| t.to_string()).as_deref(), Some("globex"));
        assert_eq!(keys.tenant_for(b"key-three "), None);
        assert_eq!(keys.tenant_for(b""), None);
        assert_eq!(keys.tenants().len(), 2);
    }

    #[test]
    fn refuses_bad_documents_without_echoing_keys() {
        let cases = [
            (r#"["secret-key-1"]"#, "wrong shape"),
            (r#"{"acme": "secret-key-1"}"#, "wrong shape"),
            ("{", "malformed JSON"),
            ("{}", "names no tenant"),
            (r#"{"acme": []}"#, "has no keys"),
            (r#"{"a b": ["secret-key-1"]}"#, "tenant id"),
            (r#"{"acme": ["short"]}"#, "8-256 visible"),
            (r#"{"acme": ["secret key 1"]}"#, "8-256 visible"),
            (r#"{"acme": ["secret-key-1,secret-key-2"]}"#, "other than a comma"),
            (r#"{"acme": ["secret-key-1"], "acme": ["secret-key-2"]}"#, "given more than once"),
            (r#"{"acme": ["secret-key-1"], "globex": ["secret-key-1"]}"#, "share a key"),
        ];
        for (doc, expected) in cases {
            let err = TenantKeys::from_json(doc).expect_err(doc).to_string();
            assert!(err.contains(expected), "{doc}: {err}");
            assert!(!err.contains("secret"), "{doc}: {err}");
        }
    }

    #[test]
    fn replacement_swaps_the_whole_set_and_failure_keeps_it() {
        let keys = TenantKeys::from_json(r#"{"acme": ["old-key-123"]}"#).expect("valid");
        keys.replace_from_json(r#"{"acme": ["new-key-123"]}"#).expect("valid");
        assert!(keys.tenant_for(b"old-key-123").is_none());
        assert!(keys.tenant_for(b"new-key-123").is_some());
        assert!(keys.replace_from_json("not json").is_err());
        assert!(keys.tenant_for(b"new-key-123").is_some());
    }

    #[test]
    fn debug_shows_no_keys() {
        let keys = TenantKeys::from_json(r#"{"acme": ["secret-key-1"]}"#).expect("valid");
        assert!(!format!("{keys:?}").contains("secret"));
    }
}
