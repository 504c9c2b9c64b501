//! Weaknesses reported to service providers (14.1.2): record the report to the
//! provider, its responses and the verdict on the fix, and list those overdue.

use custos_kit::{
    auth, db_time::DbTime, error::Violations, outbox::NewEvent, time_fmt::to_timestamp,
};
use custos_proto::intake::v1 as pb;
use time::{Duration, OffsetDateTime};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{IntakeApi, PROVIDERS, convert, read::page_size};
use crate::{
    error::IntakeError,
    report::{self, past_time},
    store::{ProviderReportRow, ProviderResponseRow},
};

impl IntakeApi {
    async fn provider_report_wire(&self, id: Uuid) -> Result<pb::ProviderReport, IntakeError> {
        let p = self
            .store
            .provider_report(id)
            .await?
            .ok_or(IntakeError::ProviderReportNotFound)?;
        let responses = self.store.provider_responses(id).await?;
        Ok(convert::provider_report(&p, &responses))
    }

    /// Roles: helpdesk, security advisor, IT support.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn provider_report(
        &self,
        request: Request<pb::RecordProviderReportRequest>,
    ) -> Result<Response<pb::RecordProviderReportResponse>, Status> {
        let principal = auth::require_any(&request, PROVIDERS)?.clone();
        let req = request.into_inner();
        let now = OffsetDateTime::now_utc();
        let mut v = Violations::new();
        let report_id = v.check("report_id", convert::parse_id(&req.report_id));
        let provider = report::text(&mut v, "provider", &req.provider, 200, true);
        let provider_reference = report::text(
            &mut v,
            "provider_reference",
            &req.provider_reference,
            200,
            false,
        );
        let reported_at = past_time(
            &mut v,
            "reported_at",
            req.reported_at.as_ref(),
            &self.rules(now),
        );
        if req.reported_at.is_none() {
            v.add("reported_at", "is required");
        }
        v.finish().map_err(IntakeError::from)?;
        let report_id = report_id.expect("checked");
        let report = self
            .store
            .report(report_id)
            .await?
            .ok_or(IntakeError::NotFound)?;
        let row = ProviderReportRow {
            id: Uuid::now_v7(),
            report_id,
            report_reference: report.reference.clone(),
            provider,
            provider_reference,
            reported_at: DbTime::new(reported_at.expect("checked")),
            recorded_by: principal.subject.clone(),
            recorded_at: DbTime::new(now),
            verdict: pb::FixVerdict::Pending as i16,
            verdict_notes: String::new(),
            verdict_by: None,
            verdict_at: None,
        };
        let event = NewEvent::new(
            report_id,
            report.reference,
            now,
            &pb::ProviderReportRecorded {
                provider_report_id: row.id.to_string(),
                provider: row.provider.clone(),
                reported_at: Some(to_timestamp(row.reported_at.get())),
            },
        );
        self.store.record_provider_report(&row, &event).await?;
        Ok(Response::new(pb::RecordProviderReportResponse {
            provider_report: Some(self.provider_report_wire(row.id).await?),
        }))
    }

    /// Roles: helpdesk, security advisor, IT support.
    #[tracing::instrument(skip_all, fields(provider_report_id))]
    pub(super) async fn provider_response(
        &self,
        request: Request<pb::RecordProviderResponseRequest>,
    ) -> Result<Response<pb::RecordProviderResponseResponse>, Status> {
        let principal = auth::require_any(&request, PROVIDERS)?.clone();
        let req = request.into_inner();
        let now = OffsetDateTime::now_utc();
        let mut v = Violations::new();
        let id = v.check(
            "provider_report_id",
            convert::parse_id(&req.provider_report_id),
        );
        let responded_at = past_time(
            &mut v,
            "responded_at",
            req.responded_at.as_ref(),
            &self.rules(now),
        );
        if req.responded_at.is_none() {
            v.add("responded_at", "is required");
        }
        let summary = report::text(&mut v, "summary", &req.summary, 4000, true);
        v.finish().map_err(IntakeError::from)?;
        let id = id.expect("checked");
        let response = ProviderResponseRow {
            id: Uuid::now_v7(),
            provider_report_id: id,
            responded_at: DbTime::new(responded_at.expect("checked")),
            summary,
            recorded_by: principal.subject.clone(),
            recorded_at: DbTime::new(now),
        };
        if let Some(p) = self.store.provider_report(id).await?
            && response.responded_at < p.reported_at
        {
            let mut v = Violations::new();
            v.add(
                "responded_at",
                "must not be before the weakness was reported to the provider",
            );
            return Err(IntakeError::from(v.finish().unwrap_err()).into());
        }
        self.store
            .record_provider_response(&response, |p| {
                NewEvent::new(
                    p.report_id,
                    p.report_reference.clone(),
                    now,
                    &pb::ProviderResponseRecorded {
                        provider_report_id: p.id.to_string(),
                        provider_response_id: response.id.to_string(),
                    },
                )
            })
            .await?;
        Ok(Response::new(pb::RecordProviderResponseResponse {
            provider_report: Some(self.provider_report_wire(id).await?),
        }))
    }

    /// Roles: helpdesk, security advisor, IT support.
    #[tracing::instrument(skip_all, fields(provider_report_id))]
    pub(super) async fn fix_verdict(
        &self,
        request: Request<pb::RecordFixVerdictRequest>,
    ) -> Result<Response<pb::RecordFixVerdictResponse>, Status> {
        let principal = auth::require_any(&request, PROVIDERS)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = v.check(
            "provider_report_id",
            convert::parse_id(&req.provider_report_id),
        );
        let verdict = match pb::FixVerdict::try_from(req.verdict) {
            Ok(verdict @ (pb::FixVerdict::Effective | pb::FixVerdict::Ineffective)) => {
                Some(verdict)
            }
            _ => {
                v.add("verdict", "must be EFFECTIVE or INEFFECTIVE");
                None
            }
        };
        let notes = report::text(&mut v, "notes", &req.notes, 4000, false);
        v.finish().map_err(IntakeError::from)?;
        let (id, verdict) = (id.expect("checked"), verdict.expect("checked"));
        let now = OffsetDateTime::now_utc();
        self.store
            .record_fix_verdict(
                id,
                verdict as i16,
                &notes,
                &principal.subject,
                DbTime::new(now),
                |p| {
                    NewEvent::new(
                        p.report_id,
                        p.report_reference.clone(),
                        now,
                        &pb::ProviderFixVerdictRecorded {
                            provider_report_id: p.id.to_string(),
                            verdict: verdict as i32,
                        },
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::RecordFixVerdictResponse {
            provider_report: Some(self.provider_report_wire(id).await?),
        }))
    }

    /// Roles: helpdesk, security advisor, IT support.
    #[tracing::instrument(skip_all)]
    pub(super) async fn overdue(
        &self,
        request: Request<pb::ListOverdueProviderReportsRequest>,
    ) -> Result<Response<pb::ListOverdueProviderReportsResponse>, Status> {
        auth::require_any(&request, PROVIDERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let limit = page_size(&mut v, "page_size", req.page_size);
        let after = v
            .check("page_token", convert::parse_page_token(&req.page_token))
            .flatten();
        v.finish().map_err(IntakeError::from)?;
        let days = self.settings.provider_response_days;
        let cutoff = DbTime::new(OffsetDateTime::now_utc() - Duration::days(i64::from(days)));
        let mut rows = self
            .store
            .overdue_provider_reports(cutoff, after, limit + 1)
            .await?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| convert::page_token(r.reported_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let provider_reports = rows
            .iter()
            .map(|p| convert::provider_report(p, &[]))
            .collect();
        Ok(Response::new(pb::ListOverdueProviderReportsResponse {
            provider_reports,
            next_page_token,
            response_days: days as i32,
        }))
    }
}
