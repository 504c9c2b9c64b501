//! The small shared error vocabulary every service maps its own errors onto, and its one
//! mapping to `tonic::Status`. Every status carries a `google.rpc.ErrorInfo` with a
//! stable reason and the service's domain (`intake.custos`): clients branch on the
//! reason, never on the English text. Internal causes are logged here, never sent.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::Duration,
};

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
    /// The call waited longer than allowed (on the client, say).
    DeadlineExceeded,
    /// Stored data was found damaged (evidence whose bytes no longer match their digest).
    DataLoss,
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
            Code::DataLoss => GrpcCode::DataLoss,
            Code::DeadlineExceeded => GrpcCode::DeadlineExceeded,
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

    /// An optional enum of a filter: 0 (unspecified) means "any"; any other value is
    /// parsed, and a value `parse` refuses is recorded against `field`.
    pub fn optional_enum<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        value: i32,
        parse: impl FnOnce(i32) -> Result<T, E>,
    ) -> Option<T> {
        if value == 0 {
            None
        } else {
            self.check(field, parse(value))
        }
    }

    /// An optional time of a request, recorded against `field` when it is not a valid
    /// timestamp.
    pub fn optional_time(
        &mut self,
        field: &str,
        value: &Option<prost_types::Timestamp>,
    ) -> Option<crate::storage::DbTime> {
        let ts = value.as_ref()?;
        self.check(
            field,
            crate::time_fmt::from_timestamp(ts)
                .map(crate::storage::DbTime::new)
                .ok_or("is not a valid timestamp"),
        )
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

/// A precondition that failed (`google.rpc.PreconditionFailure`): for example an
/// illegal state transition, naming the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    pub kind: String,
    pub subject: String,
    pub description: String,
}

/// Implemented by each service's error enum; `into_status` does the rest.
pub trait ServiceError: std::error::Error {
    /// The client-facing kind of the error.
    fn code(&self) -> Code;

    /// A stable, documented reason (`UPPER_SNAKE_CASE`) that clients branch on.
    fn reason(&self) -> &'static str;

    /// Field violations, for `InvalidArgument`.
    fn violations(&self) -> &[FieldViolation] {
        &[]
    }

    /// Failed preconditions, for `FailedPrecondition`.
    fn preconditions(&self) -> Vec<PreconditionViolation> {
        Vec::new()
    }

    /// Dynamic values that go with the reason (`ErrorInfo.metadata`).
    fn metadata(&self) -> HashMap<String, String> {
        HashMap::new()
    }
}

/// The ErrorInfo domain of a service: `intake` → `intake.custos`.
pub fn domain(service: &'static str) -> &'static str {
    static DOMAINS: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let mut domains = DOMAINS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    domains
        .entry(service)
        .or_insert_with(|| Box::leak(format!("{service}.custos").into_boxed_str()))
}

/// How long a client should wait before retrying UNAVAILABLE or RESOURCE_EXHAUSTED.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A status with an ErrorInfo (and RetryInfo where a retry may succeed).
pub fn status(code: GrpcCode, message: impl Into<String>, reason: &str, domain: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, domain, HashMap::new());
    if matches!(code, GrpcCode::Unavailable | GrpcCode::ResourceExhausted) {
        details.set_retry_info(Some(RETRY_DELAY));
    }
    Status::with_error_details(code, message, details)
}

/// Converts a service error into the status a client sees. Internal and unavailable
/// errors are logged once here with their cause chain and replaced by a generic message.
pub fn into_status<E: ServiceError>(err: E, domain: &str) -> Status {
    let code = err.code();
    let mut details = ErrorDetails::new();
    details.set_error_info(err.reason(), domain, err.metadata());
    let message = match code {
        Code::Internal | Code::Unavailable => {
            tracing::error!(error = %DisplayChain(&err), code = ?code, reason = err.reason(), "request failed");
            if code == Code::Internal {
                "internal error; the failure was logged".to_owned()
            } else {
                details.set_retry_info(Some(RETRY_DELAY));
                "service temporarily unavailable; retry with backoff".to_owned()
            }
        }
        Code::InvalidArgument if !err.violations().is_empty() => {
            for v in err.violations() {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
            // Each field once, in the order first named.
            let mut fields: Vec<&str> = Vec::new();
            for v in err.violations() {
                if !fields.contains(&v.field.as_str()) {
                    fields.push(v.field.as_str());
                }
            }
            format!("{err} ({})", fields.join(", "))
        }
        Code::FailedPrecondition => {
            for p in err.preconditions() {
                details.add_precondition_failure_violation(p.kind, p.subject, p.description);
            }
            err.to_string()
        }
        Code::ResourceExhausted => {
            details.set_retry_info(Some(RETRY_DELAY));
            err.to_string()
        }
        _ => err.to_string(),
    };
    Status::with_error_details(code.into(), message, details)
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

/// The `(reason, domain)` of a status's ErrorInfo (for clients and tests).
pub fn status_reason(status: &Status) -> Option<(String, String)> {
    status
        .get_details_error_info()
        .map(|info| (info.reason, info.domain))
}

/// A request with bad fields, for code that has no richer error of its own.
#[derive(Debug, thiserror::Error)]
#[error("the request has invalid fields")]
pub struct InvalidRequest(pub Vec<FieldViolation>);

impl ServiceError for InvalidRequest {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }

    fn reason(&self) -> &'static str {
        "INVALID_ARGUMENT"
    }

    fn violations(&self) -> &[FieldViolation] {
        &self.0
    }
}

/// Checks a text field and returns it trimmed: required or not, at most `max`
/// characters, no control characters but line breaks and tabs.
pub fn text(v: &mut Violations, field: &str, value: &str, max: usize, required: bool) -> String {
    let value = value.trim();
    if required && value.is_empty() {
        v.add(field, "is required");
    } else if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    } else if value.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t' && c != '\r')
            // Bidirectional overrides and isolates: they make text read differently
            // from what it holds ("Trojan Source").
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    }) {
        v.add(
            field,
            "must not contain control characters or bidirectional overrides",
        );
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database password=hunter2 exploded")]
    struct Boom;

    impl ServiceError for Boom {
        fn code(&self) -> Code {
            Code::Internal
        }
        fn reason(&self) -> &'static str {
            "INTERNAL"
        }
    }

    #[test]
    fn violations_travel_as_bad_request_details_with_a_reason() {
        let mut v = Violations::new();
        v.add("details.category", "unknown category");
        v.add("contact.phone", "not a phone number");
        let status = into_status(InvalidRequest(v.finish().unwrap_err()), "intake.custos");
        assert_eq!(status.code(), GrpcCode::InvalidArgument);
        assert!(status.message().contains("details.category"));
        let fields: Vec<_> = status_violations(&status)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["details.category", "contact.phone"]);
        assert_eq!(
            status_reason(&status),
            Some(("INVALID_ARGUMENT".into(), "intake.custos".into()))
        );
    }

    #[test]
    fn internal_causes_are_not_sent_to_clients() {
        let status = into_status(Boom, "intake.custos");
        assert_eq!(status.code(), GrpcCode::Internal);
        assert!(!status.message().contains("hunter2"));
        assert_eq!(status_reason(&status).unwrap().0, "INTERNAL");
    }

    #[test]
    fn domains_are_named_after_their_service() {
        assert_eq!(domain("intake"), "intake.custos");
        assert!(std::ptr::eq(domain("intake"), domain("intake")));
    }
}
