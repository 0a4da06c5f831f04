//! What a client is told about an invalid request: each broken rule names the field, query
//! parameter or header it is about, so a client fixes a request in one round trip.

use serde::Serialize;

/// One invalid field: its name as the client wrote it and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// A field (or parameter) the contract does not have. One with an empty name is reported
    /// on `container` (`body`, `query`), so every error names something the client can find.
    pub fn unknown(name: &str, container: &str) -> Self {
        if name.is_empty() {
            Self::new(container, "has a field with an empty name")
        } else {
            Self::new(name, "unknown field")
        }
    }

    /// A member given more than once at `path` (I-JSON): ambiguous, so refused.
    pub fn duplicate(path: &crate::json::Path) -> Self {
        Self::new(path.to_string(), "is given more than once; duplicate member names are ambiguous")
    }
}
