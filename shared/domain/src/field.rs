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

    /// A member given more than once at `path` (I-JSON): ambiguous, so refused. A top-level
    /// member whose name is empty is reported on `body`, so the error names something.
    pub fn duplicate(path: &crate::json::Path) -> Self {
        match path.to_string() {
            field if field.is_empty() => Self::new(
                "body",
                "has a member with an empty name given more than once; duplicate member names are ambiguous",
            ),
            field => Self::new(field, "is given more than once; duplicate member names are ambiguous"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Path, Step};

    #[test]
    fn a_duplicate_always_names_a_field() {
        assert_eq!(FieldError::duplicate(&Path(vec![Step::Member("plan".into())])).field, "plan");
        assert_eq!(FieldError::duplicate(&Path(vec![Step::Member(String::new())])).field, "body");
        let nested = Path(vec![Step::Member("properties".into()), Step::Member(String::new())]);
        assert_eq!(FieldError::duplicate(&nested).field, "properties.");
    }
}
