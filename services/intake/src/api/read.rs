//! GetReport and ListReports. A caller who may not see a report gets NOT_FOUND, exactly
//! as if it did not exist. Every read of a report (it holds personal data) is written to
//! the audit trail, and committed, before the report is returned.

use custos_kit::{
    auth::{self, Principal},
    error::Violations,
    page,
    storage::DbTime,
};
use custos_proto::intake::v1::{self as pb, get_report_request::Lookup};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{IntakeApi, READ_ALL, convert};
use crate::{
    error::IntakeError,
    report::{Kind, Medium, Status as ReportStatus},
    store::{self, ListFilter, Page, ReportRow},
};

pub(super) fn may_see(principal: &Principal, row: &ReportRow) -> bool {
    principal.has_any(READ_ALL) || row.submitted_by.as_deref() == Some(principal.subject.as_str())
}

impl IntakeApi {
    /// Loads a report the principal may see, or NOT_FOUND.
    pub(super) async fn visible_report(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<ReportRow, IntakeError> {
        let conn = self.db().read().await?;
        match store::report(conn, id).await? {
            Some(row) if may_see(principal, &row) => Ok(row),
            _ => Err(IntakeError::NotFound),
        }
    }

    /// Records reads in the audit trail, committed before anything is returned.
    async fn audit(
        &self,
        principal: &Principal,
        action: &str,
        ids: &[Uuid],
    ) -> Result<(), IntakeError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        Ok(self.db().audit(principal, action, "report", &ids).await?)
    }

    /// Roles: helpdesk, security advisor, service; or the named reporter for their own.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn get(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let principal = auth::require_authenticated(&request)?.clone();
        let mut conn = self.db().read().await.map_err(IntakeError::from)?;
        let row = match &request.get_ref().lookup {
            Some(Lookup::ReportId(id)) => {
                let mut v = Violations::new();
                let id = v.check("report_id", convert::parse_id(id));
                v.finish().map_err(IntakeError::from)?;
                store::report(&mut conn, id.expect("checked")).await
            }
            Some(Lookup::Reference(reference)) => {
                store::report_by_reference(&mut conn, reference).await
            }
            None => {
                let mut v = Violations::new();
                v.add("lookup", "give report_id or reference");
                return Err(IntakeError::from(v.finish().unwrap_err()).into());
            }
        }
        .map_err(IntakeError::from)?;
        let row = row
            .filter(|r| may_see(&principal, r))
            .ok_or(IntakeError::NotFound)?;
        tracing::Span::current().record("report_id", tracing::field::display(row.id));
        let original = store::original(&mut conn, row.id)
            .await
            .map_err(IntakeError::from)?
            .ok_or_else(|| IntakeError::Corrupt("a report without its original".into()))?;
        let revisions = store::revisions(&mut conn, row.id).await?;
        let follow_ups = store::follow_ups(&mut conn, row.id).await?;
        let mut provider_reports = Vec::new();
        for p in store::provider_reports_for(&mut conn, row.id)
            .await
            .map_err(IntakeError::from)?
        {
            let responses = store::provider_responses(&mut conn, p.id)
                .await
                .map_err(IntakeError::from)?;
            provider_reports.push(convert::provider_report(&p, &responses));
        }
        drop(conn);
        self.audit(&principal, "report.read", &[row.id]).await?;
        Ok(Response::new(pb::GetReportResponse {
            report: Some(convert::report(&row)),
            history: convert::history(&row, &original, &revisions),
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
            kind: v.optional_enum("filter.kind", f.kind, Kind::from_wire),
            category: (!f.category.is_empty()).then(|| f.category.clone()),
            status: v.optional_enum("filter.status", f.status, ReportStatus::from_wire),
            medium: v.optional_enum("filter.medium", f.medium, Medium::from_wire),
            submitted_after: v.optional_time("filter.submitted_after", &f.submitted_after),
            submitted_before: v.optional_time("filter.submitted_before", &f.submitted_before),
            ..ListFilter::default()
        };
        if !principal.has_any(READ_ALL) {
            filter.submitted_by = Some(principal.subject.clone());
        }
        let basic = match pb::ReportView::try_from(req.view) {
            Ok(pb::ReportView::Basic) => true,
            Ok(pb::ReportView::Unspecified | pb::ReportView::Full) => false,
            Err(_) => {
                v.add("view", "must be BASIC or FULL");
                false
            }
        };
        let limit = page::size(&mut v, "page_size", req.page_size);
        // A token is bound to the filter (and so to the caller, for their own reports).
        let scope = format!("ListReports {filter:?}");
        let tokens = self.db().page_tokens();
        let after = v
            .check(
                "page_token",
                tokens.open::<Page>(scope.as_bytes(), &req.page_token),
            )
            .flatten();
        v.finish().map_err(IntakeError::from)?;

        let conn = self.db().read().await.map_err(IntakeError::from)?;
        let seal = |at: DbTime, id: Uuid| {
            tokens.seal(
                scope.as_bytes(),
                &Page {
                    submitted_at: at,
                    id,
                },
            )
        };
        let (reports, next_page_token) = if basic {
            let mut rows = store::list_summaries(conn, &filter, after, limit + 1)
                .await
                .map_err(IntakeError::from)?;
            let next = page::cut(&mut rows, limit, |r| seal(r.submitted_at, r.id));
            // No personal data in this view: nothing to audit.
            (rows.into_iter().map(convert::summary).collect(), next)
        } else {
            let mut rows = store::list(conn, &filter, after, limit + 1)
                .await
                .map_err(IntakeError::from)?;
            let next = page::cut(&mut rows, limit, |r| seal(r.submitted_at, r.id));
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            self.audit(&principal, "report.list", &ids).await?;
            (rows.into_iter().map(convert::into_report).collect(), next)
        };
        Ok(Response::new(pb::ListReportsResponse {
            reports,
            next_page_token,
        }))
    }
}
