//! Database failures, sorted into the two kinds callers act on differently.

use diesel::result::DatabaseErrorKind;
use diesel_async::pooled_connection::PoolError;

/// What went wrong talking to PostgreSQL. Clone, so that one failed statement can answer
/// every request whose event it carried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DataError {
    /// The database cannot serve right now (unreachable, pool exhausted, timed out, shutting
    /// down); the same request may succeed if retried later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken invariant, not worth retrying.
    #[error("database error: {0}")]
    Unexpected(String),
}

impl DataError {
    /// True when a retry later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<bb8::RunError<PoolError>> for DataError {
    fn from(err: bb8::RunError<PoolError>) -> Self {
        match err {
            bb8::RunError::TimedOut => Self::Unavailable("timed out waiting for a connection".into()),
            bb8::RunError::User(e) => Self::Unavailable(e.to_string()),
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
        match &err {
            Error::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::SerializationFailure,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if TRANSIENT_MESSAGES.iter().any(|m| info.message().contains(m)) =>
            {
                Self::Unavailable(info.message().to_owned())
            }
            _ => Self::Unexpected(err.to_string()),
        }
    }
}
