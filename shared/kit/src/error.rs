//! The small shared error vocabulary every service maps its own errors onto, and its one
//! mapping to `tonic::Status` (internal causes are logged here, never sent to clients).

use tonic::{Code as GrpcCode, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What kind of failure a service error is, as far as a client needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    Aborted,
    Unavailable,
    Internal,
}

impl From<Code> for GrpcCode {
    fn from(code: Code) -> Self {
        match code {
            Code::InvalidArgument => GrpcCode::InvalidArgument,
            Code::NotFound => GrpcCode::NotFound,
            Code::AlreadyExists => GrpcCode::AlreadyExists,
            Code::FailedPrecondition => GrpcCode::FailedPrecondition,
            Code::PermissionDenied => GrpcCode::PermissionDenied,
            Code::Unauthenticated => GrpcCode::Unauthenticated,
            Code::ResourceExhausted => GrpcCode::ResourceExhausted,
            Code::Aborted => GrpcCode::Aborted,
            Code::Unavailable => GrpcCode::Unavailable,
            Code::Internal => GrpcCode::Internal,
        }
    }
}

/// One bad field of a request: its path (e.g. `details.occurred_at`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Collects every bad field of a request so that the client learns of all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records the error of a parse, returning its value when it succeeded.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|e| self.add(field, e.to_string())).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was wrong, else the whole list.
    pub fn finish(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Implemented by each service's error enum; `into_status` does the rest.
pub trait ServiceError: std::error::Error {
    /// The client-facing kind of the error.
    fn code(&self) -> Code;

    /// Field violations, for `InvalidArgument`.
    fn violations(&self) -> &[FieldViolation] {
        &[]
    }
}

/// Converts a service error into the status a client sees. Internal and unavailable
/// errors are logged once here with their cause chain and replaced by a generic message.
pub fn into_status<E: ServiceError>(err: E) -> Status {
    let code = err.code();
    match code {
        Code::Internal | Code::Unavailable => {
            tracing::error!(error = %DisplayChain(&err), code = ?code, "request failed");
            let message = if code == Code::Internal {
                "internal error; the failure was logged"
            } else {
                "service temporarily unavailable; retry with backoff"
            };
            Status::new(code.into(), message)
        }
        Code::InvalidArgument if !err.violations().is_empty() => {
            let mut details = ErrorDetails::new();
            for v in err.violations() {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            let fields: Vec<&str> = err.violations().iter().map(|v| v.field.as_str()).collect();
            let message = format!("{err} ({})", fields.join(", "));
            Status::with_error_details(GrpcCode::InvalidArgument, message, details)
        }
        _ => Status::new(code.into(), err.to_string()),
    }
}

/// Formats an error with its whole `source()` chain on one line.
pub struct DisplayChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Reads the field violations back out of a status (for clients and tests).
pub fn status_violations(status: &Status) -> Vec<FieldViolation> {
    status
        .get_details_bad_request()
        .map(|br| {
            br.field_violations
                .into_iter()
                .map(|v| FieldViolation {
                    field: v.field,
                    description: v.description,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("report is invalid")]
    struct Bad(Vec<FieldViolation>);

    impl ServiceError for Bad {
        fn code(&self) -> Code {
            Code::InvalidArgument
        }
        fn violations(&self) -> &[FieldViolation] {
            &self.0
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("database password=hunter2 exploded")]
    struct Boom;

    impl ServiceError for Boom {
        fn code(&self) -> Code {
            Code::Internal
        }
    }

    #[test]
    fn violations_travel_as_bad_request_details() {
        let mut v = Violations::new();
        v.add("details.category", "unknown category");
        v.add("contact.phone", "not a phone number");
        let status = into_status(Bad(v.finish().unwrap_err()));
        assert_eq!(status.code(), GrpcCode::InvalidArgument);
        assert!(status.message().contains("details.category"));
        let fields: Vec<_> = status_violations(&status)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["details.category", "contact.phone"]);
    }

    #[test]
    fn internal_causes_are_not_sent_to_clients() {
        let status = into_status(Boom);
        assert_eq!(status.code(), GrpcCode::Internal);
        assert!(!status.message().contains("hunter2"));
    }
}

/// A request with bad fields, for code that has no richer error of its own.
#[derive(Debug, thiserror::Error)]
#[error("the request has invalid fields")]
pub struct InvalidRequest(pub Vec<FieldViolation>);

impl ServiceError for InvalidRequest {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }

    fn violations(&self) -> &[FieldViolation] {
        &self.0
    }
}
