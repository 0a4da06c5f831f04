#![doc = include_str!("../README.md")]

pub mod event;
pub mod field;
pub mod fingerprint;
pub mod json;
pub mod message;
pub mod metrics;
pub mod tenant;
pub mod time;

pub use event::{EventBody, EventId, EventName, IngestRules, NewEvent, Properties};
pub use field::FieldError;
pub use fingerprint::Fingerprint;
pub use message::{EventMessage, MessageError};
pub use metrics::{Interval, MetricsQuery};
pub use tenant::TenantId;

/// A failure of something the rules are applied against (the database, Pub/Sub), classified
/// by what the caller should do: retry later, or treat it as a bug. The HTTP layer maps the
/// first to 503 and the second to 500 without knowing what failed.
pub trait Retryable {
    /// True when the same request may succeed if retried later.
    fn is_retryable(&self) -> bool;
}
