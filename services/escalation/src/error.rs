//! Escalation's errors, mapped to gRPC status through the kit's shared codes. Every
//! status carries an ErrorInfo in the domain `escalation.custos` with one of the reasons
//! listed in `directory_service.proto` and `escalation_service.proto`.

use custos_kit::{
    error::{Code, FieldViolation, PreconditionViolation, ServiceError},
    idempotency::IdempotencyError,
    storage::StorageError,
};

/// The ErrorInfo domain of escalation's errors.
pub const DOMAIN: &str = "escalation.custos";

#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error("idempotency_key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("contact not found")]
    ContactNotFound,
    #[error(
        "the contact is at revision {current}, not {expected}: someone changed it since you \
         read it; read it again (GetContact)"
    )]
    ContactChanged { expected: i32, current: i32 },
    #[error(
        "the list is at revision {current}, not {expected}: someone changed it since you read \
         it; read it again (ListContactLists)"
    )]
    ListChanged { expected: i32, current: i32 },
    #[error(
        "the policy is at revision {current}, not {expected}: someone changed it since you \
         read it; read it again (ListEscalationPolicies)"
    )]
    PolicyChanged { expected: i32, current: i32 },
    #[error("another contact already has this subject")]
    SubjectTaken,
    /// (trigger, field of its policy, problem): stored policies the change would leave
    /// unfollowable.
    #[error("{}", policy_nominees_message(.0))]
    PolicyNominees(Vec<(crate::directory::Trigger, String, String)>),
    #[error("escalation not found")]
    EscalationNotFound,
    #[error(
        "you are not a nominee of any tier of this escalation that has been reached, so \
         there is nothing for you to acknowledge"
    )]
    NotNominee,
    #[error("the escalation was stopped ({reason}): it takes no more acknowledgements")]
    EscalationEnded { reason: String },
    #[error("a stored value is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<IdempotencyError> for EscalationError {
    fn from(e: IdempotencyError) -> Self {
        match e {
            IdempotencyError::Reused => EscalationError::IdempotencyKeyReused,
            IdempotencyError::Storage(e) => EscalationError::Storage(e),
        }
    }
}

impl ServiceError for EscalationError {
    fn code(&self) -> Code {
        match self {
            EscalationError::Invalid(_) | EscalationError::IdempotencyKeyReused => {
                Code::InvalidArgument
            }
            EscalationError::ContactNotFound | EscalationError::EscalationNotFound => {
                Code::NotFound
            }
            EscalationError::ContactChanged { .. }
            | EscalationError::ListChanged { .. }
            | EscalationError::PolicyChanged { .. } => Code::Aborted,
            EscalationError::SubjectTaken => Code::AlreadyExists,
            EscalationError::NotNominee => Code::PermissionDenied,
            EscalationError::EscalationEnded { .. } | EscalationError::PolicyNominees(_) => {
                Code::FailedPrecondition
            }
            EscalationError::Corrupt(_) => Code::Internal,
            EscalationError::Storage(e) => e.code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            EscalationError::Invalid(_) => "INVALID_FIELD",
            EscalationError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            EscalationError::ContactNotFound => "CONTACT_NOT_FOUND",
            EscalationError::ContactChanged { .. } => "CONTACT_CHANGED",
            EscalationError::ListChanged { .. } => "LIST_CHANGED",
            EscalationError::PolicyChanged { .. } => "POLICY_CHANGED",
            EscalationError::SubjectTaken => "SUBJECT_TAKEN",
            EscalationError::EscalationNotFound => "ESCALATION_NOT_FOUND",
            EscalationError::PolicyNominees(_) => "POLICY_NOMINEES",
            EscalationError::NotNominee => "NOT_NOMINEE",
            EscalationError::EscalationEnded { .. } => "ESCALATION_ENDED",
            EscalationError::Corrupt(_) => "INTERNAL",
            EscalationError::Storage(e) => e.reason(),
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            EscalationError::Invalid(v) => v,
            EscalationError::IdempotencyKeyReused => custos_kit::idempotency::reused_violation(),
            _ => &[],
        }
    }

    fn preconditions(&self) -> Vec<PreconditionViolation> {
        match self {
            EscalationError::EscalationEnded { .. } => vec![PreconditionViolation {
                kind: "STATE".into(),
                subject: "escalation_id".into(),
                description: self.to_string(),
            }],
            EscalationError::PolicyNominees(problems) => problems
                .iter()
                .map(|(trigger, field, problem)| PreconditionViolation {
                    kind: "POLICY".into(),
                    subject: format!("{}/{field}", trigger.name()),
                    description: problem.clone(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> std::collections::HashMap<String, String> {
        match self {
            EscalationError::ContactChanged { current, .. }
            | EscalationError::ListChanged { current, .. }
            | EscalationError::PolicyChanged { current, .. } => {
                [("revision".to_owned(), current.to_string())].into()
            }
            _ => Default::default(),
        }
    }
}

impl From<EscalationError> for tonic::Status {
    fn from(e: EscalationError) -> Self {
        custos_kit::error::into_status(e, DOMAIN)
    }
}

/// Bad fields, as an error.
impl From<Vec<FieldViolation>> for EscalationError {
    fn from(v: Vec<FieldViolation>) -> Self {
        EscalationError::Invalid(v)
    }
}

fn policy_nominees_message(problems: &[(crate::directory::Trigger, String, String)]) -> String {
    let first = problems
        .first()
        .map(|(t, f, p)| format!("{} policy, {f}: {p}", t.name()))
        .unwrap_or_default();
    format!(
        "the change would leave a stored escalation policy unfollowable ({first}); change \
         the policy first (SetEscalationPolicy)"
    )
}
