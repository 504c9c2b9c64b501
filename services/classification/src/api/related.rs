//! SuggestRelated: the open reports and incidents that may belong to the same series of
//! events as a report (policy 6, 14.2). Routing facts and references only: nothing of a
//! report's content (the shared inventory numbers and locations are known here only as
//! intake's keyed digests).

use custos_kit::{auth, error::Violations, time_fmt::to_timestamp};
use custos_proto::{classification::v1 as pb, prost_types::Duration};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{ClassificationApi, TRIAGE};
use crate::{error::ClassificationError, store::RelatedBy};

fn related_by(r: &[RelatedBy]) -> Vec<i32> {
    r.iter()
        .map(|r| match r {
            RelatedBy::InventoryNumber => pb::RelatedBy::InventoryNumber,
            RelatedBy::Location => pb::RelatedBy::Location,
            RelatedBy::Category => pb::RelatedBy::Category,
        } as i32)
        .collect()
}

impl ClassificationApi {
    /// Roles: security advisor, service.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn related(
        &self,
        request: Request<pb::SuggestRelatedRequest>,
    ) -> Result<Response<pb::SuggestRelatedResponse>, Status> {
        auth::require_any(&request, TRIAGE)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let report_id = v.check(
            "report_id",
            Uuid::try_parse(&req.report_id).map_err(|_| "must be a report id (a UUID)"),
        );
        v.finish().map_err(ClassificationError::from)?;
        let report_id = report_id.expect("checked");
        tracing::Span::current().record("report_id", tracing::field::display(report_id));
        let conn = self.db.read().await.map_err(ClassificationError::from)?;
        let s = self
            .series
            .around(conn, report_id)
            .await
            .map_err(ClassificationError::from)?
            .ok_or(ClassificationError::ReportNotFound)?;
        Ok(Response::new(pb::SuggestRelatedResponse {
            reports: s
                .reports
                .iter()
                .map(|r| pb::RelatedReport {
                    report_id: r.report_id.to_string(),
                    reference: r.reference.clone(),
                    category: r.category.clone(),
                    submitted_at: Some(to_timestamp(r.submitted_at.get())),
                    monitored: r.monitored,
                    related_by: related_by(&r.related_by),
                })
                .collect(),
            incidents: s
                .incidents
                .iter()
                .map(|i| pb::RelatedIncident {
                    incident_id: i.id.to_string(),
                    reference: i.reference.clone(),
                    title: i.title.clone(),
                    related_by: related_by(&i.related_by),
                })
                .collect(),
            possible_incident: s.possible_incident,
            window: Some(Duration {
                seconds: self.series.window.whole_seconds(),
                nanos: 0,
            }),
            threshold: self.series.threshold as i32,
            category_threshold: self.series.category_threshold as i32,
        }))
    }
}
