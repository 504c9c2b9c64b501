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
    /// Dimensions (codes) that neither a figure nor a choice scores.
    #[error("the impact is not scored on every dimension")]
    Unscored {
        dimensions: Vec<String>,
        violations: Vec<FieldViolation>,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ClassificationError {
    pub fn unscored(dimensions: Vec<String>) -> Self {
        let violations = dimensions
            .iter()
            .map(|d| FieldViolation {
                field: "choices".into(),
                description: format!(
                    "no figure or choice scores the dimension `{d}`: choose a row for it"
                ),
            })
            .collect();
        ClassificationError::Unscored {
            dimensions,
            violations,
        }
    }
}

impl ServiceError for ClassificationError {
    fn code(&self) -> Code {
        match self {
            ClassificationError::Invalid(_) | ClassificationError::Unscored { .. } => {
                Code::InvalidArgument
            }
            ClassificationError::Storage(e) => e.code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ClassificationError::Invalid(_) => "INVALID_ARGUMENT",
            ClassificationError::Unscored { .. } => "IMPACT_UNSCORED",
            ClassificationError::Storage(e) => e.reason(),
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            ClassificationError::Invalid(v) => v,
            ClassificationError::Unscored { violations, .. } => violations,
            _ => &[],
        }
    }

    fn metadata(&self) -> std::collections::HashMap<String, String> {
        match self {
            ClassificationError::Unscored { dimensions, .. } => {
                [("dimensions".to_owned(), dimensions.join(","))].into()
            }
            _ => Default::default(),
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
