//! Database failures, sorted into the two kinds callers act on differently, each keeping its
//! cause so the one log line written at the boundary shows the whole chain.

use std::sync::Arc;

use diesel::result::DatabaseErrorKind;
use diesel_async::pooled_connection::PoolError;

/// The cause of a failure, shared: one failed group-commit statement answers every request
/// whose event it carried.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// What went wrong talking to PostgreSQL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DataError {
    /// The database cannot serve right now (unreachable, pool exhausted, timed out, shutting
    /// down); the same request may succeed if retried later.
    #[error("the database is unavailable")]
    Unavailable(#[source] Cause),
    /// Anything else: a bug or a broken invariant, not worth retrying.
    #[error("unexpected database error")]
    Unexpected(#[source] Cause),
}

impl DataError {
    /// Unavailable because of `cause`.
    pub fn unavailable(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Arc::new(cause))
    }

    /// Unexpected because of `cause`.
    pub fn unexpected(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unexpected(Arc::new(cause))
    }

    /// True when a retry later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl domain::Retryable for DataError {
    fn is_retryable(&self) -> bool {
        self.is_unavailable()
    }
}

/// Failures this crate itself detects.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Inconsistency {
    #[error("timed out waiting for a pooled connection")]
    PoolTimeout,
    #[error("conflicting rows stayed unresolved after retries")]
    ConflictUnresolved,
    #[error("the group-commit writer has stopped")]
    WriterStopped,
    #[error("the insert reported no outcome")]
    NoOutcome,
}

impl From<bb8::RunError<PoolError>> for DataError {
    fn from(err: bb8::RunError<PoolError>) -> Self {
        match err {
            bb8::RunError::TimedOut => Self::unavailable(Inconsistency::PoolTimeout),
            bb8::RunError::User(e) => Self::unavailable(e),
        }
    }
}

/// Server messages (SQLSTATE classes 53, 57 and 08) that mean "not now" rather than "never".
/// diesel-async folds these codes into `Unknown`, so the message is all that is left to read.
const TRANSIENT_MESSAGES: &[&str] = &[
    "statement timeout",
    "canceling statement",
    "terminating connection",
    "the database system is",
    "too many clients",
    "remaining connection slots",
    "out of memory",
    "could not serialize",
    "deadlock detected",
];

impl From<diesel::result::Error> for DataError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::Error;
        let transient = match &err {
            Error::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::SerializationFailure,
                _,
            ) => true,
            Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
                TRANSIENT_MESSAGES.iter().any(|m| info.message().contains(m))
            }
            _ => false,
        };
        if transient { Self::unavailable(err) } else { Self::unexpected(err) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_cause_is_kept() {
        let err = DataError::from(bb8::RunError::<PoolError>::TimedOut);
        assert!(err.is_unavailable());
        assert_eq!(err.to_string(), "the database is unavailable");
        assert_eq!(err.source().map(ToString::to_string).as_deref(), Some("timed out waiting for a pooled connection"));
        let err = DataError::from(diesel::result::Error::NotFound);
        assert!(!err.is_unavailable());
        assert_eq!(err.source().map(ToString::to_string).as_deref(), Some("Record not found"));
    }
}
