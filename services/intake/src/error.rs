//! Intake's errors, mapped to gRPC status through the kit's shared codes.

use custos_kit::{
    error::{Code, FieldViolation, ServiceError},
    storage::StorageError,
};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldViolation>),
    /// Also what a caller gets for a report it may not see: no hint that it exists.
    #[error("report not found")]
    NotFound,
    #[error("provider report not found")]
    ProviderReportNotFound,
    #[error("no report matches this receipt")]
    ReceiptNotFound,
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("the report is at revision {actual}, not {expected}; reload it and try again")]
    RevisionMismatch { expected: i32, actual: i32 },
    #[error("idempotency_key was already used for a different report")]
    IdempotencyKeyReused,
    #[error("anonymous reporting is not enabled here; sign in to report")]
    AnonymousDisabled,
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A group-committed write failed for every submission in it (the cause is logged
    /// once by the writer).
    #[error("the report could not be stored")]
    BatchFailed(Code),
    #[error("stored report is unreadable: {0}")]
    Corrupt(String),
}

impl ServiceError for IntakeError {
    fn code(&self) -> Code {
        match self {
            IntakeError::Invalid(_) => Code::InvalidArgument,
            IntakeError::NotFound
            | IntakeError::ProviderReportNotFound
            | IntakeError::ReceiptNotFound => Code::NotFound,
            IntakeError::FailedPrecondition(_) => Code::FailedPrecondition,
            IntakeError::RevisionMismatch { .. } => Code::Aborted,
            IntakeError::IdempotencyKeyReused => Code::AlreadyExists,
            IntakeError::AnonymousDisabled => Code::Unauthenticated,
            IntakeError::Storage(e) => e.code(),
            IntakeError::BatchFailed(code) => *code,
            IntakeError::Corrupt(_) => Code::Internal,
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            IntakeError::Invalid(v) => v,
            _ => &[],
        }
    }
}

impl From<sqlx::Error> for IntakeError {
    fn from(err: sqlx::Error) -> Self {
        IntakeError::Storage(err.into())
    }
}

impl From<Vec<FieldViolation>> for IntakeError {
    fn from(v: Vec<FieldViolation>) -> Self {
        IntakeError::Invalid(v)
    }
}

impl From<IntakeError> for tonic::Status {
    fn from(err: IntakeError) -> Self {
        custos_kit::error::into_status(err)
    }
}
