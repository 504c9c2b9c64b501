//! Evidence-custody's errors, mapped to gRPC status through the kit's shared codes. Every
//! status carries an ErrorInfo in the domain `custody.custos` with one of the reasons
//! listed in `custody_service.proto`.

use custos_kit::{
    error::{Code, FieldViolation, PreconditionViolation, ServiceError},
    idempotency::IdempotencyError,
    storage::StorageError,
};

use crate::content::ContentError;

/// The ErrorInfo domain of evidence-custody's errors.
pub const DOMAIN: &str = "custody.custos";

#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error("idempotency_key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("evidence item not found")]
    ItemNotFound,
    #[error("incident not found")]
    IncidentNotFound,
    #[error("upload not found")]
    UploadNotFound,
    #[error(
        "the item is at revision {current}, not {expected}: someone changed it since you read \
         it; read it again (GetEvidence)"
    )]
    ItemChanged { expected: i32, current: i32 },
    #[error("{action} is not allowed while the item is {state}; allowed now: {}", allowed_text(.allowed))]
    IllegalTransition {
        action: &'static str,
        state: &'static str,
        allowed: Vec<&'static str>,
    },
    #[error(
        "the item is on legal hold ({reason}): it cannot be released or disposed of until the hold is lifted"
    )]
    LegalHold { reason: String },
    #[error(
        "the item already has content (sha256 {sha256}): content is added once; register a derived item for a copy"
    )]
    ContentExists { sha256: String },
    #[error("the item has no content")]
    NoContent,
    #[error(
        "the bytes received have SHA-256 {actual}, not the {expected} expected: nothing was kept"
    )]
    DigestMismatch {
        expected: String,
        actual: String,
        /// The request field that gave the expected digest.
        field: Vec<FieldViolation>,
    },
    #[error(
        "the upload's bytes end at {committed}, not at {offset}: send the bytes from {committed} (GetUpload)"
    )]
    UploadOffset { offset: i64, committed: i64 },
    #[error(
        "the upload sent nothing for {secs} s (custody.upload_idle_secs): it was abandoned and nothing was kept"
    )]
    UploadIdle { secs: u64 },
    #[error("the upload was finalised: it takes no more bytes")]
    UploadFinalized,
    #[error("{0}")]
    NotAuthorised(&'static str),
    #[error(
        "the stored content no longer has its recorded SHA-256 {expected}: it is damaged or was changed; the failure is recorded in the chain of custody"
    )]
    ContentCorrupt { expected: String },
    #[error(
        "the chain of custody of {reference} does not verify ({description}): nothing is returned from it until this is investigated (VerifyChain)"
    )]
    ChainBroken {
        reference: String,
        description: String,
    },
    #[error("the evidence store failed: {0}")]
    Store(#[from] ContentError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn allowed_text(allowed: &[&'static str]) -> String {
    if allowed.is_empty() {
        "nothing (the item has left custody)".into()
    } else {
        allowed.join(", ")
    }
}

impl From<IdempotencyError> for CustodyError {
    fn from(e: IdempotencyError) -> Self {
        match e {
            IdempotencyError::Reused => CustodyError::IdempotencyKeyReused,
            IdempotencyError::Storage(e) => CustodyError::Storage(e),
        }
    }
}

impl ServiceError for CustodyError {
    fn code(&self) -> Code {
        match self {
            CustodyError::Invalid(_)
            | CustodyError::IdempotencyKeyReused
            | CustodyError::DigestMismatch { .. } => Code::InvalidArgument,
            CustodyError::ItemNotFound
            | CustodyError::IncidentNotFound
            | CustodyError::UploadNotFound => Code::NotFound,
            CustodyError::ItemChanged { .. } => Code::Aborted,
            CustodyError::IllegalTransition { .. }
            | CustodyError::LegalHold { .. }
            | CustodyError::ContentExists { .. }
            | CustodyError::NoContent
            | CustodyError::UploadOffset { .. }
            | CustodyError::UploadFinalized => Code::FailedPrecondition,
            CustodyError::NotAuthorised(_) => Code::PermissionDenied,
            CustodyError::UploadIdle { .. } => Code::DeadlineExceeded,
            CustodyError::ContentCorrupt { .. } | CustodyError::ChainBroken { .. } => {
                Code::DataLoss
            }
            CustodyError::Store(_) => Code::Unavailable,
            CustodyError::Storage(e) => e.code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            CustodyError::Invalid(_) => "INVALID_FIELD",
            CustodyError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            CustodyError::ItemNotFound => "ITEM_NOT_FOUND",
            CustodyError::IncidentNotFound => "INCIDENT_NOT_FOUND",
            CustodyError::UploadNotFound => "UPLOAD_NOT_FOUND",
            CustodyError::ItemChanged { .. } => "ITEM_CHANGED",
            CustodyError::IllegalTransition { .. } => "ILLEGAL_TRANSITION",
            CustodyError::LegalHold { .. } => "LEGAL_HOLD",
            CustodyError::ContentExists { .. } => "CONTENT_EXISTS",
            CustodyError::NoContent => "NO_CONTENT",
            CustodyError::DigestMismatch { .. } => "DIGEST_MISMATCH",
            CustodyError::UploadOffset { .. } => "UPLOAD_OFFSET",
            CustodyError::UploadFinalized => "UPLOAD_FINALIZED",
            CustodyError::UploadIdle { .. } => "UPLOAD_IDLE",
            CustodyError::NotAuthorised(_) => "NOT_AUTHORISED",
            CustodyError::ContentCorrupt { .. } => "CONTENT_CORRUPT",
            CustodyError::ChainBroken { .. } => "CHAIN_BROKEN",
            CustodyError::Store(_) => "UNAVAILABLE",
            CustodyError::Storage(e) => e.reason(),
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            CustodyError::Invalid(v) => v,
            CustodyError::IdempotencyKeyReused => custos_kit::idempotency::reused_violation(),
            CustodyError::DigestMismatch { field, .. } => field,
            _ => &[],
        }
    }

    fn preconditions(&self) -> Vec<PreconditionViolation> {
        let one = |kind: &str, subject: &str| {
            vec![PreconditionViolation {
                kind: kind.into(),
                subject: subject.into(),
                description: self.to_string(),
            }]
        };
        match self {
            CustodyError::IllegalTransition { allowed, .. } => {
                let mut v = one("STATE", "item_id");
                v.extend(allowed.iter().map(|a| PreconditionViolation {
                    kind: "ALLOWED".into(),
                    subject: (*a).into(),
                    description: format!("{a} is allowed in the item's state"),
                }));
                v
            }
            CustodyError::LegalHold { .. } => one("LEGAL_HOLD", "item_id"),
            CustodyError::ContentExists { .. } | CustodyError::NoContent => {
                one("CONTENT", "item_id")
            }
            CustodyError::UploadOffset { .. } => one("OFFSET", "offset"),
            _ => Vec::new(),
        }
    }

    fn metadata(&self) -> std::collections::HashMap<String, String> {
        match self {
            CustodyError::ItemChanged { current, .. } => {
                [("revision".to_owned(), current.to_string())].into()
            }
            CustodyError::UploadOffset { committed, .. } => {
                [("committed_size".to_owned(), committed.to_string())].into()
            }
            CustodyError::DigestMismatch { actual, .. } => {
                [("sha256".to_owned(), actual.clone())].into()
            }
            _ => Default::default(),
        }
    }
}

impl From<CustodyError> for tonic::Status {
    fn from(e: CustodyError) -> Self {
        custos_kit::error::into_status(e, DOMAIN)
    }
}

impl From<Vec<FieldViolation>> for CustodyError {
    fn from(v: Vec<FieldViolation>) -> Self {
        CustodyError::Invalid(v)
    }
}
