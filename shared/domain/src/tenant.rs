//! Tenants: who an event belongs to. A tenant id is written in the key document and carried in
//! every stored row and Pub/Sub message, so it is checked the same way wherever it is read.

use std::fmt;
use std::sync::Arc;

/// A tenant's identifier: 1 to 64 letters, digits, `-`, `_` or `.`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Checks `id`.
    pub fn parse(id: &str) -> Result<Self, &'static str> {
        let valid = (1..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid { Ok(Self(id.into())) } else { Err("must be 1-64 characters of letters, digits, '-', '_' or '.'") }
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert_eq!(TenantId::parse("acme-1_x.y").map(|t| t.to_string()).as_deref(), Ok("acme-1_x.y"));
        for bad in ["", "a b", "é", &"a".repeat(65), "a/b"] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
