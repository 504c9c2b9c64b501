//! Classification's errors, mapped to gRPC status through the kit's shared codes. Every
//! status carries an ErrorInfo in the domain `classification.custos` with one of the
//! reasons listed in `classification_service.proto`.

use custos_kit::{
    error::{Code, FieldViolation, PreconditionViolation, ServiceError},
    idempotency::IdempotencyError,
    storage::StorageError,
};

use crate::incident::IncidentState;

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
    #[error("idempotency_key was already used for a different request")]
    IdempotencyKeyReused,
    /// Not (yet) in the triage queue: intake's event has not arrived, or there is no such
    /// report.
    #[error(
        "no report with this id has reached classification (a report accepted moments ago \
         may still be on its way from intake)"
    )]
    ReportNotFound,
    /// Also what a caller gets for an incident it may not see: no hint that it exists.
    #[error("incident not found")]
    IncidentNotFound { field: &'static str },
    #[error(
        "the incident is closed: it no longer changes, and reports can no longer be linked to it"
    )]
    IncidentClosed { field: &'static str },
    /// The lifecycle does not allow the move asked for.
    #[error("{}", incident_state_message(*.state, *.wanted))]
    IncidentState {
        state: IncidentState,
        wanted: IncidentState,
    },
    #[error(
        "the incident is at revision {current}, not {expected}: someone changed it since \
         you read it; read it again (GetIncident), then decide again"
    )]
    IncidentChanged { expected: i32, current: i32 },
    #[error(
        "this is the incident's responsible officer: assign another officer before \
         revoking their access"
    )]
    OfficerAccess,
    #[error("only the incident's responsible officer or a security advisor may {0}")]
    NotIncidentOfficer(&'static str),
    #[error("only a security advisor may {0}")]
    AdvisorRequired(&'static str),
    #[error(
        "closing an incident approves its post-incident review: only a security advisor, \
         or the policy owner on its access list, who did not write the review, may"
    )]
    ApproverRequired,
    #[error(
        "a personal-data breach is recorded on this incident without a decision about \
         telling the regulator: decide (DecideBreachNotification) before closing"
    )]
    BreachUndecided,
    #[error(
        "the regulator has been told of this breach: that decision cannot be reversed \
         (record what happened since in the actions log)"
    )]
    BreachNotified,
    #[error("a post-incident review is recorded once the incident is resolved; it is {}", .state.name())]
    ReviewNotDue { state: IncidentState },
    #[error(
        "the incident has no post-incident review: record one (RecordIncidentReview), \
         then close it"
    )]
    ReviewRequired,
    #[error(
        "no personal-data breach is recorded on this incident: record when the \
         organisation became aware of it (RecordBreachAwareness) first"
    )]
    BreachNotRecorded,
    #[error(
        "a decision about this breach has been made: the time of awareness it was made on \
         stands"
    )]
    BreachDecided,
    #[error(
        "the report is at revision {current} here, not {expected}: if it was amended \
         since you read it, read it again and assess; if you read a newer revision in \
         intake, that amendment is still on its way here: try again shortly"
    )]
    ReportAmended { expected: i32, current: i32 },
    #[error(
        "the report's latest assessment is {latest}, not {expected}: someone else has \
         assessed it; read its assessments (ListAssessments), then decide again"
    )]
    ReportReassessed { expected: i32, latest: i32 },
    #[error("a stored value is unreadable: {0}")]
    Corrupt(String),
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
            ClassificationError::Invalid(_)
            | ClassificationError::Unscored { .. }
            | ClassificationError::IdempotencyKeyReused => Code::InvalidArgument,
            ClassificationError::ReportNotFound | ClassificationError::IncidentNotFound { .. } => {
                Code::NotFound
            }
            ClassificationError::IncidentClosed { .. }
            | ClassificationError::IncidentState { .. }
            | ClassificationError::OfficerAccess
            | ClassificationError::ReviewNotDue { .. }
            | ClassificationError::ReviewRequired
            | ClassificationError::BreachNotRecorded
            | ClassificationError::BreachDecided
            | ClassificationError::BreachUndecided
            | ClassificationError::BreachNotified => Code::FailedPrecondition,
            ClassificationError::IncidentChanged { .. } => Code::Aborted,
            ClassificationError::NotIncidentOfficer(_)
            | ClassificationError::AdvisorRequired(_)
            | ClassificationError::ApproverRequired => Code::PermissionDenied,
            ClassificationError::ReportAmended { .. }
            | ClassificationError::ReportReassessed { .. } => Code::Aborted,
            ClassificationError::Corrupt(_) => Code::Internal,
            ClassificationError::Storage(e) => e.code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ClassificationError::Invalid(_) => "INVALID_ARGUMENT",
            ClassificationError::Unscored { .. } => "IMPACT_UNSCORED",
            ClassificationError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ClassificationError::ReportNotFound => "REPORT_NOT_FOUND",
            ClassificationError::IncidentNotFound { .. } => "INCIDENT_NOT_FOUND",
            ClassificationError::IncidentClosed { .. } => "INCIDENT_CLOSED",
            ClassificationError::IncidentState { .. } => "INCIDENT_STATE",
            ClassificationError::IncidentChanged { .. } => "INCIDENT_CHANGED",
            ClassificationError::OfficerAccess => "OFFICER_ACCESS",
            ClassificationError::NotIncidentOfficer(_) => "NOT_INCIDENT_OFFICER",
            ClassificationError::AdvisorRequired(_) => "ADVISOR_REQUIRED",
            ClassificationError::ApproverRequired => "APPROVER_REQUIRED",
            ClassificationError::ReviewNotDue { .. } => "INCIDENT_STATE",
            ClassificationError::ReviewRequired => "REVIEW_REQUIRED",
            ClassificationError::BreachNotRecorded => "BREACH_NOT_RECORDED",
            ClassificationError::BreachDecided => "BREACH_DECIDED",
            ClassificationError::BreachUndecided => "BREACH_UNDECIDED",
            ClassificationError::BreachNotified => "BREACH_NOTIFIED",
            ClassificationError::ReportAmended { .. } => "REPORT_AMENDED",
            ClassificationError::ReportReassessed { .. } => "REPORT_REASSESSED",
            ClassificationError::Corrupt(_) => "INTERNAL",
            ClassificationError::Storage(e) => e.reason(),
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            ClassificationError::Invalid(v) => v,
            ClassificationError::IdempotencyKeyReused => {
                custos_kit::idempotency::reused_violation()
            }
            ClassificationError::Unscored { violations, .. } => violations,
            _ => &[],
        }
    }

    fn preconditions(&self) -> Vec<PreconditionViolation> {
        match self {
            ClassificationError::IncidentClosed { field } => vec![PreconditionViolation {
                kind: "STATE".into(),
                subject: (*field).into(),
                description: if *field == "link_incident.incident_id" {
                    "the incident is closed: raise a new incident, or link another".into()
                } else {
                    "the incident is closed: it no longer changes".into()
                },
            }],
            ClassificationError::IncidentState { state, wanted } => vec![PreconditionViolation {
                kind: "STATE".into(),
                subject: "incident_id".into(),
                description: incident_state_message(*state, *wanted),
            }],
            ClassificationError::ReviewNotDue { .. } => vec![PreconditionViolation {
                kind: "STATE".into(),
                subject: "incident_id".into(),
                description: self.to_string(),
            }],
            ClassificationError::ReviewRequired => vec![PreconditionViolation {
                kind: "REVIEW".into(),
                subject: "incident_id".into(),
                description: self.to_string(),
            }],
            ClassificationError::BreachNotRecorded
            | ClassificationError::BreachDecided
            | ClassificationError::BreachUndecided
            | ClassificationError::BreachNotified => {
                vec![PreconditionViolation {
                    kind: "BREACH".into(),
                    subject: "incident_id".into(),
                    description: self.to_string(),
                }]
            }
            ClassificationError::OfficerAccess => vec![PreconditionViolation {
                kind: "OFFICER".into(),
                subject: "subject".into(),
                description: "the responsible officer keeps access: assign another officer first"
                    .into(),
            }],
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> std::collections::HashMap<String, String> {
        match self {
            ClassificationError::Unscored { dimensions, .. } => {
                [("dimensions".to_owned(), dimensions.join(","))].into()
            }
            ClassificationError::ReportAmended { current, .. } => {
                [("report_revision".to_owned(), current.to_string())].into()
            }
            ClassificationError::ReportReassessed { latest, .. } => {
                [("latest_sequence".to_owned(), latest.to_string())].into()
            }
            ClassificationError::IncidentNotFound { field } => {
                [("field".to_owned(), (*field).to_owned())].into()
            }
            ClassificationError::IncidentChanged { current, .. } => {
                [("revision".to_owned(), current.to_string())].into()
            }
            ClassificationError::IncidentState { state, wanted } => {
                let mut m: std::collections::HashMap<String, String> = [
                    ("state".to_owned(), state.name().to_owned()),
                    ("wanted".to_owned(), wanted.name().to_owned()),
                ]
                .into();
                if let Some(next) = state.next() {
                    m.insert("allowed".to_owned(), next.name().to_owned());
                }
                m
            }
            _ => Default::default(),
        }
    }
}

/// What an illegal move is told: where the incident is, and the one move it allows.
fn incident_state_message(state: IncidentState, wanted: IncidentState) -> String {
    match state.next() {
        Some(next) => format!(
            "the incident is {}, so it cannot move to {}: the only move allowed is to {} ({})",
            state.name(),
            wanted.name(),
            next.name(),
            next.verb()
        ),
        None => format!(
            "the incident is {}, so it cannot move to {}: a closed incident does not move",
            state.name(),
            wanted.name()
        ),
    }
}

impl From<sqlx::Error> for ClassificationError {
    fn from(err: sqlx::Error) -> Self {
        ClassificationError::Storage(err.into())
    }
}

impl From<IdempotencyError> for ClassificationError {
    fn from(err: IdempotencyError) -> Self {
        match err {
            IdempotencyError::Reused => ClassificationError::IdempotencyKeyReused,
            IdempotencyError::Storage(e) => ClassificationError::Storage(e),
        }
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
