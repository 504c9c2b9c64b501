//! SubmitReport: named or anonymous, idempotent, with immediate guidance.

use custos_kit::{auth, db_time::DbTime, outbox::NewEvent, time_fmt::to_timestamp};
use custos_proto::intake::v1::{self as pb, submit_report_request::Reporter};
use prost::Message;
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

    /// Roles: anyone with a token; without one, anonymous reports when enabled. For an
    /// anonymous report nothing about the caller is kept, even when a token was sent.
    #[tracing::instrument(skip_all, fields(report_id, anonymous))]
    pub(super) async fn submit(
        &self,
        request: Request<pb::SubmitReportRequest>,
    ) -> Result<Response<pb::SubmitReportResponse>, Status> {
        let anonymous = matches!(request.get_ref().reporter, Some(Reporter::Anonymous(_)));
        tracing::Span::current().record("anonymous", anonymous);
        let principal = auth::principal(&request).cloned();
        let now = OffsetDateTime::now_utc();
        let req = request.into_inner();
        let new = report::parse_submission(&req, &self.rules(now)).map_err(IntakeError::from)?;
        let submitted_by = match (&principal, anonymous) {
            (_, true) => None,
            (Some(p), false) => Some(p.subject.clone()),
            (None, false) => {
                return Err(Status::unauthenticated(
                    "a named report needs a bearer token; sign in, or report anonymously",
                ));
            }
        };
        if anonymous && principal.is_none() && !self.settings.anonymous_reporting {
            return Err(IntakeError::AnonymousDisabled.into());
        }

        let key = (!req.idempotency_key.is_empty()).then_some(req.idempotency_key.as_str());
        let scope = submitted_by.as_deref().unwrap_or("anonymous");
        let request_hash = key.map(|_| {
            let mut unkeyed = req.clone();
            unkeyed.idempotency_key.clear();
            receipt::request_hash(&unkeyed.encode_to_vec())
        });
        let id = Uuid::now_v7();
        let receipt_text = anonymous.then(|| receipt::new_receipt(id, key));
        let submitted_at = DbTime::new(now);
        let event = NewEvent::new(
            id,
            "",
            now,
            &pb::ReportSubmitted {
                kind: new.kind.to_wire(),
                category: new.details.category.clone(),
                medium: new.details.medium.to_wire(),
                personal_information: new.details.personal_information,
                malware_suspected: new.details.malware_suspected,
                anonymous,
                requires_senior_management_notice: new.senior_notice(),
                occurred_at: new.details.occurred_at.map(to_timestamp),
                submitted_at: Some(to_timestamp(submitted_at.get())),
            },
        );
        let idempotency_hash = key.map(|k| receipt::idempotency_hash(scope, k));
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
                idempotency_hash,
                request_hash: request_hash.clone(),
                receipt_hash: receipt_text.as_deref().map(receipt::receipt_hash),
                event,
            })
            .await?;
        let (row, receipt_text) = match outcome {
            Submitted::Created(row) => {
                tracing::info!(reference = %row.reference, "report received");
                (row, receipt_text)
            }
            Submitted::Existing(row) => {
                if row.request_hash != request_hash {
                    return Err(IntakeError::IdempotencyKeyReused.into());
                }
                tracing::info!(reference = %row.reference, "idempotent retry: returning the existing report");
                let receipt_text = anonymous.then(|| receipt::new_receipt(row.id, key));
                (row, receipt_text)
            }
        };
        tracing::Span::current().record("report_id", tracing::field::display(row.id));
        Ok(Response::new(pb::SubmitReportResponse {
            report: Some(convert::report(&row)?),
            guidance,
            receipt: receipt_text.unwrap_or_default(),
        }))
    }
}
