//! GetReport, ListReports, follow-ups, and the anonymous receipt calls. A caller who may
//! not see a report gets NOT_FOUND, exactly as if it did not exist. Every read of a
//! report (it holds personal data) is written to the audit log.

use custos_kit::{
    auth::{self, Principal},
    db_time::DbTime,
    error::Violations,
    outbox::NewEvent,
    time_fmt::from_timestamp,
};
use custos_proto::intake::v1::{self as pb, get_report_request::Lookup};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{AMEND, IntakeApi, READ_ALL, convert};
use crate::{
    error::IntakeError,
    receipt,
    report::{self, Kind, Medium, Status as ReportStatus},
    store::{FollowUpRow, ListFilter, Page, ReportRow},
};

const MAX_PAGE: i32 = 500;
const DEFAULT_PAGE: i32 = 50;
const SOURCE_ACCOUNT: i16 = pb::FollowUpSource::Account as i16;
const SOURCE_RECEIPT: i16 = pb::FollowUpSource::Receipt as i16;

fn may_see(principal: &Principal, row: &ReportRow) -> bool {
    principal.has_any(READ_ALL) || row.submitted_by.as_deref() == Some(principal.subject.as_str())
}

pub(super) fn page_size(v: &mut Violations, field: &str, size: i32) -> i64 {
    match size {
        0 => i64::from(DEFAULT_PAGE),
        s if s < 0 => {
            v.add(field, "must not be negative");
            0
        }
        s => i64::from(s.min(MAX_PAGE)),
    }
}

/// An optional enum filter: unspecified means "any"; unknown values are errors.
fn filter_enum<T>(
    v: &mut Violations,
    field: &str,
    value: i32,
    parse: fn(i32) -> Result<T, String>,
) -> Option<T> {
    if value == 0 {
        None
    } else {
        v.check(field, parse(value))
    }
}

impl IntakeApi {
    /// Loads a report the principal may see, or NOT_FOUND.
    async fn visible_report(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<ReportRow, IntakeError> {
        match self.store.report(id).await? {
            Some(row) if may_see(principal, &row) => Ok(row),
            _ => Err(IntakeError::NotFound),
        }
    }

    /// Roles: helpdesk, security advisor, service; or the named reporter for their own.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn get(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let principal = auth::require_authenticated(&request)?.clone();
        let row = match &request.get_ref().lookup {
            Some(Lookup::ReportId(id)) => {
                let mut v = Violations::new();
                let id = v.check("report_id", convert::parse_id(id));
                v.finish().map_err(IntakeError::from)?;
                self.store.report(id.expect("checked")).await?
            }
            Some(Lookup::Reference(reference)) => self.store.report_by_reference(reference).await?,
            None => {
                let mut v = Violations::new();
                v.add("lookup", "give report_id or reference");
                return Err(IntakeError::from(v.finish().unwrap_err()).into());
            }
        };
        let row = row
            .filter(|r| may_see(&principal, r))
            .ok_or(IntakeError::NotFound)?;
        tracing::Span::current().record("report_id", tracing::field::display(row.id));
        self.store
            .audit_reads(&principal, "report.read", "report", &[row.id])
            .await?;
        let revisions = self.store.revisions(row.id).await?;
        let follow_ups = self.store.follow_ups(row.id).await?;
        let mut provider_reports = Vec::new();
        for p in self.store.provider_reports_for(row.id).await? {
            let responses = self.store.provider_responses(p.id).await?;
            provider_reports.push(convert::provider_report(&p, &responses));
        }
        Ok(Response::new(pb::GetReportResponse {
            report: Some(convert::report(&row)?),
            history: convert::history(&row, &revisions)?,
            follow_ups: follow_ups.iter().map(convert::follow_up).collect(),
            provider_reports,
        }))
    }

    /// Roles: helpdesk, security advisor, service see all; anyone else their own.
    #[tracing::instrument(skip_all)]
    pub(super) async fn list(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        let principal = auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let f = req.filter.unwrap_or_default();
        let mut v = Violations::new();
        let mut filter = ListFilter {
            kind: filter_enum(&mut v, "filter.kind", f.kind, Kind::from_wire),
            category: (!f.category.is_empty()).then(|| f.category.clone()),
            status: filter_enum(&mut v, "filter.status", f.status, ReportStatus::from_wire),
            medium: filter_enum(&mut v, "filter.medium", f.medium, Medium::from_wire),
            ..ListFilter::default()
        };
        for (field, value, slot) in [
            (
                "filter.submitted_after",
                &f.submitted_after,
                &mut filter.submitted_after,
            ),
            (
                "filter.submitted_before",
                &f.submitted_before,
                &mut filter.submitted_before,
            ),
        ] {
            if let Some(ts) = value {
                *slot = v.check(
                    field,
                    from_timestamp(ts)
                        .map(DbTime::new)
                        .ok_or("is not a valid timestamp"),
                );
            }
        }
        if !principal.has_any(READ_ALL) {
            filter.submitted_by = Some(principal.subject.clone());
        }
        let limit = page_size(&mut v, "page_size", req.page_size);
        let after = v
            .check("page_token", convert::parse_page_token(&req.page_token))
            .flatten();
        v.finish().map_err(IntakeError::from)?;

        let mut rows = self
            .store
            .list(
                &filter,
                after.map(|(submitted_at, id)| Page { submitted_at, id }),
                limit + 1,
            )
            .await?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| convert::page_token(r.submitted_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        self.store
            .audit_reads(&principal, "report.list", "report", &ids)
            .await?;
        let reports = rows.iter().map(convert::report).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListReportsResponse {
            reports,
            next_page_token,
        }))
    }

    /// Roles: helpdesk, security advisor; or the named reporter on their own report.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn follow_up(
        &self,
        request: Request<pb::AddFollowUpRequest>,
    ) -> Result<Response<pb::AddFollowUpResponse>, Status> {
        let principal = auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = v.check("report_id", convert::parse_id(&req.report_id));
        let text = report::text(&mut v, "text", &req.text, 10_000, true);
        v.finish().map_err(IntakeError::from)?;
        let row = self
            .visible_report(&principal, id.expect("checked"))
            .await?;
        if !principal.has_any(AMEND)
            && row.submitted_by.as_deref() != Some(principal.subject.as_str())
        {
            return Err(IntakeError::NotFound.into());
        }
        let follow_up = FollowUpRow {
            id: Uuid::now_v7(),
            added_at: DbTime::now(),
            source: SOURCE_ACCOUNT,
            added_by: Some(principal.subject.clone()),
            text,
        };
        self.add_follow_up(&row, follow_up)
            .await
            .map(|f| Response::new(pb::AddFollowUpResponse { follow_up: Some(f) }))
    }

    async fn add_follow_up(
        &self,
        row: &ReportRow,
        follow_up: FollowUpRow,
    ) -> Result<pb::FollowUp, Status> {
        let event = NewEvent::new(
            row.id,
            row.reference.clone(),
            follow_up.added_at.get(),
            &pb::FollowUpAdded {
                follow_up_id: follow_up.id.to_string(),
                source: i32::from(follow_up.source),
            },
        );
        self.store.add_follow_up(row.id, &follow_up, &event).await?;
        Ok(convert::follow_up(&follow_up))
    }

    async fn report_for_receipt(&self, receipt_text: &str) -> Result<ReportRow, IntakeError> {
        if !receipt::looks_like_receipt(receipt_text) {
            let mut v = Violations::new();
            v.add(
                "receipt",
                "is not a receipt: 32 letters and digits, as given when you reported",
            );
            return Err(v.finish().unwrap_err().into());
        }
        self.store
            .report_by_receipt(receipt::receipt_hash(receipt_text))
            .await?
            .ok_or(IntakeError::ReceiptNotFound)
    }

    /// No token needed: the receipt is the credential. Shows status and what the
    /// reporter added, never staff notes.
    #[tracing::instrument(skip_all)]
    pub(super) async fn receipt_status(
        &self,
        request: Request<pb::CheckReceiptRequest>,
    ) -> Result<Response<pb::CheckReceiptResponse>, Status> {
        let row = self.report_for_receipt(&request.get_ref().receipt).await?;
        let follow_ups = self.store.follow_ups(row.id).await?;
        Ok(Response::new(pb::CheckReceiptResponse {
            reference: row.reference.clone(),
            status: row.status()?.to_wire(),
            submitted_at: convert::ts(row.submitted_at),
            follow_ups: follow_ups
                .iter()
                .filter(|f| f.source == SOURCE_RECEIPT)
                .map(convert::follow_up)
                .collect(),
        }))
    }

    /// No token needed; nothing about the caller is stored.
    #[tracing::instrument(skip_all)]
    pub(super) async fn receipt_follow_up(
        &self,
        request: Request<pb::AddReceiptInformationRequest>,
    ) -> Result<Response<pb::AddReceiptInformationResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let text = report::text(&mut v, "text", &req.text, 10_000, true);
        if !receipt::looks_like_receipt(&req.receipt) {
            v.add(
                "receipt",
                "is not a receipt: 32 letters and digits, as given when you reported",
            );
        }
        v.finish().map_err(IntakeError::from)?;
        let row = self.report_for_receipt(&req.receipt).await?;
        let follow_up = FollowUpRow {
            id: Uuid::now_v7(),
            added_at: DbTime::now(),
            source: SOURCE_RECEIPT,
            added_by: None,
            text,
        };
        let follow_up = self.add_follow_up(&row, follow_up).await?;
        Ok(Response::new(pb::AddReceiptInformationResponse {
            follow_up: Some(follow_up),
        }))
    }
}
