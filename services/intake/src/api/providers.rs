//! Weaknesses reported to service providers (14.1.2): record the report to the
//! provider, its responses and the verdict on the fix, and list those overdue.

use custos_kit::{
    auth,
    error::Violations,
    idempotency::{self, Claim, Key, Pending},
    outbox::NewEvent,
    page,
    storage::{AsConn, DbTime, Tx},
    time_fmt::to_timestamp,
};
use custos_proto::intake::v1 as pb;
use prost::Message;
use time::{Duration, OffsetDateTime};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{IntakeApi, PROVIDERS, convert};
use crate::{
    error::IntakeError,
    report::{self, FixVerdict, past_time},
    store::{self, ProviderReportRow, ProviderResponseRow},
};

async fn provider_report_wire(
    mut conn: impl AsConn,
    id: Uuid,
) -> Result<pb::ProviderReport, IntakeError> {
    let p = store::provider_report(&mut conn, id)
        .await?
        .ok_or(IntakeError::ProviderReportNotFound)?;
    let responses = store::provider_responses(&mut conn, id).await?;
    Ok(convert::provider_report(&p, &responses))
}

/// Claims a caller's idempotency key in `tx`: `Err(response)` replays an earlier call.
async fn claim<R: Message + Default>(
    tx: &mut Tx,
    subject: &str,
    method: &'static str,
    key: &str,
    fingerprint: &impl std::fmt::Debug,
) -> Result<Result<Option<Pending>, R>, IntakeError> {
    if key.is_empty() {
        return Ok(Ok(None));
    }
    let key = Key::new(subject, method, key);
    Ok(
        match idempotency::claim(tx, &key, &idempotency::fingerprint(fingerprint)).await? {
            Claim::New(pending) => Ok(Some(pending)),
            Claim::Replay(bytes) => {
                Err(R::decode(bytes.as_slice()).map_err(|e| IntakeError::Corrupt(e.to_string()))?)
            }
        },
    )
}

impl IntakeApi {
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
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, false);
        v.finish().map_err(IntakeError::from)?;
        let report_id = report_id.expect("checked");
        let mut tx = self.db().begin().await.map_err(IntakeError::from)?;
        let fingerprint = (report_id, &provider, &provider_reference, reported_at);
        let pending = match claim(
            &mut tx,
            &principal.subject,
            "RecordProviderReport",
            &req.idempotency_key,
            &fingerprint,
        )
        .await?
        {
            Ok(pending) => pending,
            Err(replay) => return Ok(Response::new(replay)),
        };
        let report = store::report(&mut tx, report_id)
            .await
            .map_err(IntakeError::from)?
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
            verdict: FixVerdict::Pending,
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
        store::record_provider_report(&mut tx, &row, &event).await?;
        let response = pb::RecordProviderReportResponse {
            provider_report: Some(provider_report_wire(&mut tx, row.id).await?),
        };
        if let Some(pending) = pending {
            idempotency::complete(&mut tx, pending, &response)
                .await
                .map_err(IntakeError::from)?;
        }
        tx.commit().await.map_err(IntakeError::from)?;
        Ok(Response::new(response))
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
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, false);
        v.finish().map_err(IntakeError::from)?;
        let id = id.expect("checked");
        let mut tx = self.db().begin().await.map_err(IntakeError::from)?;
        let pending = match claim(
            &mut tx,
            &principal.subject,
            "RecordProviderResponse",
            &req.idempotency_key,
            &(id, responded_at, &summary),
        )
        .await?
        {
            Ok(pending) => pending,
            Err(replay) => return Ok(Response::new(replay)),
        };
        let response = ProviderResponseRow {
            id: Uuid::now_v7(),
            provider_report_id: id,
            responded_at: DbTime::new(responded_at.expect("checked")),
            summary,
            recorded_by: principal.subject.clone(),
            recorded_at: DbTime::new(now),
        };
        store::record_provider_response(&mut tx, &response, |p| {
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
        let reply = pb::RecordProviderResponseResponse {
            provider_report: Some(provider_report_wire(&mut tx, id).await?),
        };
        if let Some(pending) = pending {
            idempotency::complete(&mut tx, pending, &reply)
                .await
                .map_err(IntakeError::from)?;
        }
        tx.commit().await.map_err(IntakeError::from)?;
        Ok(Response::new(reply))
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
        let verdict = match FixVerdict::from_wire(req.verdict) {
            Ok(verdict @ (FixVerdict::Effective | FixVerdict::Ineffective)) => Some(verdict),
            _ => {
                v.add("verdict", "must be EFFECTIVE or INEFFECTIVE");
                None
            }
        };
        let notes = report::text(&mut v, "notes", &req.notes, 4000, false);
        v.finish().map_err(IntakeError::from)?;
        let (id, verdict) = (id.expect("checked"), verdict.expect("checked"));
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db().begin().await.map_err(IntakeError::from)?;
        store::record_fix_verdict(
            &mut tx,
            id,
            verdict,
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
                        verdict: verdict.to_wire(),
                    },
                )
            },
        )
        .await?;
        let reply = pb::RecordFixVerdictResponse {
            provider_report: Some(provider_report_wire(&mut tx, id).await?),
        };
        tx.commit().await.map_err(IntakeError::from)?;
        Ok(Response::new(reply))
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
        let limit = page::size(&mut v, "page_size", req.page_size);
        let scope = b"ListOverdueProviderReports";
        let tokens = self.db().page_tokens();
        let after = v
            .check(
                "page_token",
                tokens.open::<(DbTime, Uuid)>(scope, &req.page_token),
            )
            .flatten();
        v.finish().map_err(IntakeError::from)?;
        let days = self.settings.provider_response_days;
        let cutoff = DbTime::new(OffsetDateTime::now_utc() - Duration::days(i64::from(days)));
        let conn = self.db().read().await.map_err(IntakeError::from)?;
        let mut rows = store::overdue_provider_reports(conn, cutoff, after, limit + 1)
            .await
            .map_err(IntakeError::from)?;
        let next_page_token = page::cut(&mut rows, limit, |r| {
            tokens.seal(scope, &(r.reported_at, r.id))
        });
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
