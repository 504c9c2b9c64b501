//! Storage failures, classified once here for every store. What the database said
//! (constraint and table names, SQL) stays in the error's source for the log; the
//! messages a client can see name none of it.

use crate::error::{Code, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique constraint refused the write.
    #[error("it conflicts with a record that already exists")]
    Conflict {
        constraint: String,
        #[source]
        source: sqlx::Error,
    },
    /// A foreign key refused the write.
    #[error("it refers to a record that does not exist")]
    MissingReference {
        constraint: String,
        #[source]
        source: sqlx::Error,
    },
    /// A not-null, check or exclusion constraint refused the write.
    #[error("the database refused the values")]
    Integrity(#[source] sqlx::Error),
    /// A serialization failure or deadlock: the transaction was rolled back whole, and
    /// running it again may succeed.
    #[error("the transaction collided with another one")]
    Serialization(#[source] sqlx::Error),
    /// The database could not be reached, or the connection broke. When this happens
    /// during a commit, whether it committed is unknown.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("database error")]
    Other(#[source] sqlx::Error),
    #[error("{0}")]
    Migrate(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// Whether the failed transaction certainly wrote nothing, so that writing part of
    /// it again alone cannot duplicate anything: constraint violations and serialization
    /// failures roll the whole transaction back. For any other error (a broken
    /// connection above all) the outcome may be unknown.
    pub fn nothing_written(&self) -> bool {
        matches!(
            self,
            StorageError::Conflict { .. }
                | StorageError::MissingReference { .. }
                | StorageError::Integrity(_)
                | StorageError::Serialization(_)
        )
    }

    /// The constraint that refused a write, for logs and for stores that turn a known
    /// constraint into their own error.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            StorageError::Conflict { constraint, .. }
            | StorageError::MissingReference { constraint, .. } => Some(constraint),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &err {
            sqlx::Error::Database(db) => {
                let constraint = db.constraint().unwrap_or_default().to_owned();
                let code = db.code().unwrap_or_default().into_owned();
                match db.kind() {
                    ErrorKind::UniqueViolation => StorageError::Conflict {
                        constraint,
                        source: err,
                    },
                    ErrorKind::ForeignKeyViolation => StorageError::MissingReference {
                        constraint,
                        source: err,
                    },
                    ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation
                    | ErrorKind::ExclusionViolation => StorageError::Integrity(err),
                    // PostgreSQL: 40001 serialization failure, 40P01 deadlock.
                    _ if code == "40001" || code == "40P01" => StorageError::Serialization(err),
                    // PostgreSQL: 08xxx connection, 57P0x shutdown, 53300 too many
                    // connections. SQLite: 5 busy, 6 locked (and their extended codes).
                    _ if code.starts_with("08")
                        || code.starts_with("57P0")
                        || code == "53300"
                        || is_sqlite_busy(&code) =>
                    {
                        StorageError::Unavailable(err)
                    }
                    _ => StorageError::Other(err),
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StorageError::Unavailable(err),
            _ => StorageError::Other(err),
        }
    }
}

/// SQLite's primary result codes 5 (BUSY) and 6 (LOCKED), with or without an extended
/// code in the upper bits.
fn is_sqlite_busy(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6) && !code.starts_with('0'))
}

impl ServiceError for StorageError {
    fn code(&self) -> Code {
        match self {
            StorageError::Conflict { .. } => Code::AlreadyExists,
            StorageError::MissingReference { .. } => Code::FailedPrecondition,
            StorageError::Serialization(_) => Code::Aborted,
            StorageError::Unavailable(_) | StorageError::Connect(_) => Code::Unavailable,
            StorageError::Integrity(_)
            | StorageError::Other(_)
            | StorageError::Migrate(_)
            | StorageError::Corrupt(_) => Code::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            StorageError::Conflict { .. } => "ALREADY_EXISTS",
            StorageError::MissingReference { .. } => "REFERENCE_NOT_FOUND",
            StorageError::Serialization(_) => "CONCURRENT_CHANGE",
            StorageError::Unavailable(_) | StorageError::Connect(_) => "DATABASE_UNAVAILABLE",
            _ => "INTERNAL",
        }
    }
}
