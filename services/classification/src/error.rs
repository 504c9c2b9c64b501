//! Classification's errors, mapped to gRPC status through the kit's shared codes. Every
//! status carries an ErrorInfo in the domain `classification.custos` with one of the
//! reasons listed in `classification_service.proto`.

use custos_kit::{
    error::{Code, FieldViolation, ServiceError},
    storage::StorageError,
};

/// The ErrorInfo domain of classification's errors.
pub const DOMAIN: &str = "classification.custos";

#[derive(Debug, thiserror::Error)]
pub enum ClassificationError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ServiceError for ClassificationError {
    fn code(&self) -> Code {
        match self {
            ClassificationError::Invalid(_) => Code::InvalidArgument,
            ClassificationError::Storage(e) => e.code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ClassificationError::Invalid(_) => "INVALID_ARGUMENT",
            ClassificationError::Storage(e) => e.reason(),
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            ClassificationError::Invalid(v) => v,
            _ => &[],
        }
    }
}

impl From<sqlx::Error> for ClassificationError {
    fn from(err: sqlx::Error) -> Self {
        ClassificationError::Storage(err.into())
    }
}

impl From<Vec<FieldViolation>> for ClassificationError {
    fn from(v: Vec<FieldViolation>) -> Self {
        ClassificationError::Invalid(v)
    }
}

impl From<ClassificationError> for tonic::Status {
    fn from(err: ClassificationError) -> Self {
        custos_kit::error::into_status(err, DOMAIN)
    }
}
