//! Intake's errors, mapped to gRPC status through the kit's shared codes. Every status
//! carries an ErrorInfo in the domain `intake.custos` with one of the reasons listed in
//! `intake_service.proto`.

use custos_kit::{
    error::{Code, FieldViolation, ServiceError},
    idempotency::IdempotencyError,
    storage::StorageError,
};

/// The ErrorInfo domain of intake's errors.
pub const DOMAIN: &str = "intake.custos";

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
    #[error("only a weakness can be reported to a service provider")]
    NotAWeakness,
    #[error("an anonymous report has no contact details to amend")]
    AnonymousHasNoContact,
    #[error("the report is at revision {actual}, not {expected}; reload it and try again")]
    RevisionMismatch { expected: i32, actual: i32 },
    #[error("idempotency_key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("a named report needs a bearer token; sign in, or report anonymously")]
    NamedNeedsToken,
    #[error("anonymous reporting is not enabled here; sign in to report")]
    AnonymousDisabled,
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A group-committed write failed (the cause is logged once by the writer).
    #[error("the report could not be stored")]
    BatchFailed { code: Code, reason: &'static str },
    #[error("stored report is unreadable: {0}")]
    Corrupt(String),
}

impl ServiceError for IntakeError {
    fn code(&self) -> Code {
        match self {
            IntakeError::Invalid(_) | IntakeError::IdempotencyKeyReused => Code::InvalidArgument,
            IntakeError::NotFound
            | IntakeError::ProviderReportNotFound
            | IntakeError::ReceiptNotFound => Code::NotFound,
            IntakeError::NotAWeakness | IntakeError::AnonymousHasNoContact => {
                Code::FailedPrecondition
            }
            IntakeError::RevisionMismatch { .. } => Code::Aborted,
            IntakeError::NamedNeedsToken | IntakeError::AnonymousDisabled => Code::Unauthenticated,
            IntakeError::Storage(e) => e.code(),
            IntakeError::BatchFailed { code, .. } => *code,
            IntakeError::Corrupt(_) => Code::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            IntakeError::Invalid(_) => "INVALID_ARGUMENT",
            IntakeError::NotFound => "REPORT_NOT_FOUND",
            IntakeError::ProviderReportNotFound => "PROVIDER_REPORT_NOT_FOUND",
            IntakeError::ReceiptNotFound => "RECEIPT_NOT_FOUND",
            IntakeError::NotAWeakness => "NOT_A_WEAKNESS",
            IntakeError::AnonymousHasNoContact => "ANONYMOUS_REPORT_HAS_NO_CONTACT",
            IntakeError::RevisionMismatch { .. } => "REVISION_MISMATCH",
            IntakeError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            IntakeError::NamedNeedsToken => "TOKEN_MISSING",
            IntakeError::AnonymousDisabled => "ANONYMOUS_REPORTING_DISABLED",
            IntakeError::Storage(e) => e.reason(),
            IntakeError::BatchFailed { reason, .. } => reason,
            IntakeError::Corrupt(_) => "INTERNAL",
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            IntakeError::Invalid(v) => v,
            IntakeError::IdempotencyKeyReused => custos_kit::idempotency::reused_violation(),
            _ => &[],
        }
    }

    fn metadata(&self) -> std::collections::HashMap<String, String> {
        match self {
            IntakeError::RevisionMismatch { expected, actual } => [
                ("expected_revision".to_owned(), expected.to_string()),
                ("current_revision".to_owned(), actual.to_string()),
            ]
            .into(),
            _ => Default::default(),
        }
    }
}

impl From<IdempotencyError> for IntakeError {
    fn from(err: IdempotencyError) -> Self {
        match err {
            IdempotencyError::Reused => IntakeError::IdempotencyKeyReused,
            IdempotencyError::Storage(e) => IntakeError::Storage(e),
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
        custos_kit::error::into_status(err, DOMAIN)
    }
}
