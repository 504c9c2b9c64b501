//! SubmitReport: named or anonymous, exactly once per idempotency key, with immediate
//! guidance.
//!
//! For an anonymous report nothing about the caller is kept, even when a token was sent:
//! no subject, no trace context (the call does not join the caller's trace, see the
//! kit's server stack, and its event carries none), no time finer than the minute (its
//! submission time and its event's), and a random id (a UUIDv7 carries the millisecond).

use custos_kit::{auth, idempotency, outbox::NewEvent, storage::DbTime, time_fmt::to_timestamp};
use custos_proto::intake::v1::{self as pb, submit_report_request::Reporter};
use time::{Duration, OffsetDateTime};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{IntakeApi, convert};
use crate::{
    error::IntakeError,
    guidance, receipt,
    report::{self, Rules},
    store::{Submission, Submitted},
};

impl IntakeApi {
    pub(super) fn rules(&self, now: OffsetDateTime) -> Rules<'_> {
        Rules {
            taxonomy: &self.taxonomy,
            now,
            skew: Duration::seconds(i64::from(self.settings.max_clock_skew_secs)),
        }
    }

    /// Roles: anyone with a token; without one, anonymous reports when enabled.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn submit(
        &self,
        request: Request<pb::SubmitReportRequest>,
    ) -> Result<Response<pb::SubmitReportResponse>, Status> {
        let anonymous = matches!(request.get_ref().reporter, Some(Reporter::Anonymous(_)));
        let principal = auth::principal(&request).cloned();
        let now = OffsetDateTime::now_utc();
        let req = request.into_inner();
        let new = report::parse_submission(&req, &self.rules(now)).map_err(IntakeError::from)?;
        let submitted_by = match (&principal, anonymous) {
            (_, true) => None,
            (Some(p), false) => Some(p.subject.clone()),
            (None, false) => return Err(IntakeError::NamedNeedsToken.into()),
        };
        if anonymous && principal.is_none() && !self.settings.anonymous_reporting {
            return Err(IntakeError::AnonymousDisabled.into());
        }

        let key = req.idempotency_key.as_str();
        let scope = submitted_by.clone().unwrap_or_else(|| "anonymous".into());
        // Over the validated report, not its encoding (protobuf's is not canonical).
        let request_hash = idempotency::fingerprint(&new);
        let (id, submitted_at) = if anonymous {
            (Uuid::new_v4(), DbTime::new(now).to_minute())
        } else {
            (Uuid::now_v7(), DbTime::new(now))
        };
        let payload = pb::ReportSubmitted {
            kind: new.kind.to_wire(),
            category: new.details.category.clone(),
            medium: new.details.medium.to_wire(),
            personal_information: new.details.personal_information,
            malware_suspected: new.details.malware_suspected,
            anonymous,
            requires_senior_management_notice: new.senior_notice(),
            occurred_at: new.details.occurred_at.map(to_timestamp),
            submitted_at: Some(to_timestamp(submitted_at.get())),
            // None for an anonymous report: equal digests would tie it to named reports
            // about the same laptop or desk, which may be its reporter's own.
            match_keys: Some(if anonymous {
                Default::default()
            } else {
                self.match_keys.of(&new.details)
            }),
        };
        let event = if anonymous {
            NewEvent::anonymous(id, "", now, &payload)
        } else {
            NewEvent::new(id, "", now, &payload)
        };
        let receipt_text = anonymous.then(|| self.receipts.receipt(id, key));
        let suggests_malware = self
            .taxonomy
            .get(&new.details.category)
            .is_some_and(|c| c.suggests_malware);
        let guidance = guidance::for_report(&new, suggests_malware);
        let outcome = self
            .store
            .submit(Submission {
                id,
                report: new,
                submitted_by,
                submitted_at,
                reference_prefix: format!("{}-{}-", self.settings.reference_prefix, now.year()),
                idempotency_hash: receipt::idempotency_hash(&scope, key),
                request_hash: request_hash.clone(),
                receipt_hash: receipt_text.as_deref().map(receipt::receipt_hash),
                event,
            })
            .await?;
        let (row, receipt_text) = match outcome {
            Submitted::Created(row) => (row, receipt_text),
            Submitted::Existing(row) => {
                if row.request_hash.as_deref() != Some(request_hash.as_slice()) {
                    return Err(IntakeError::IdempotencyKeyReused.into());
                }
                let receipt_text = anonymous.then(|| self.receipts.receipt(row.id, key));
                (row, receipt_text)
            }
        };
        if anonymous {
            // Neither its id nor its reference: the log line's time would date it.
            tracing::info!("anonymous report received");
        } else {
            tracing::Span::current().record("report_id", tracing::field::display(row.id));
            tracing::info!(reference = %row.reference, "report received");
        }
        Ok(Response::new(pb::SubmitReportResponse {
            report: Some(convert::report(&row)),
            guidance,
            receipt: receipt_text.unwrap_or_default(),
        }))
    }
}
