//! ListTriageQueue: the reports waiting for assessment, oldest first. Entries hold
//! routing facts only (no personal data), so listing them is not audited.

use custos_kit::{auth, error::Violations, page, time_fmt::to_timestamp};
use custos_proto::classification::v1 as pb;
use tonic::{Request, Response, Status};

use super::{ClassificationApi, TRIAGE};
use crate::{
    error::ClassificationError,
    report::{Kind, Medium, TriageState},
    store::{self, Page, TriageEntryRow, TriageFilter},
};

fn entry_to_wire(r: TriageEntryRow) -> pb::TriageEntry {
    pb::TriageEntry {
        report_id: r.report_id.to_string(),
        reference: r.reference,
        kind: r.kind.to_wire(),
        category: r.category,
        medium: r.medium.to_wire(),
        personal_information: r.personal_information,
        malware_suspected: r.malware_suspected,
        anonymous: r.anonymous,
        requires_senior_management_notice: r.senior_notice,
        occurred_at: r.occurred_at.map(|t| to_timestamp(t.get())),
        submitted_at: Some(to_timestamp(r.submitted_at.get())),
        last_activity_at: Some(to_timestamp(r.last_activity_at.get())),
        follow_up_count: r.follow_up_count,
        report_revision: r.report_revision,
        possible_incident: r.possible_incident,
        state: r.state.to_wire(),
        assessment_sequence: r.assessment_sequence,
    }
}

impl ClassificationApi {
    /// Roles: security advisor, service.
    #[tracing::instrument(skip_all)]
    pub(super) async fn triage_queue(
        &self,
        request: Request<pb::ListTriageQueueRequest>,
    ) -> Result<Response<pb::ListTriageQueueResponse>, Status> {
        auth::require_any(&request, TRIAGE)?;
        let req = request.into_inner();
        let f = req.filter.unwrap_or_default();
        let mut v = Violations::new();
        let filter = TriageFilter {
            kind: v.optional_enum("filter.kind", f.kind, Kind::from_wire),
            categories: f.categories.clone(),
            medium: v.optional_enum("filter.medium", f.medium, Medium::from_wire),
            personal_information: f.personal_information,
            submitted_after: v.optional_time("filter.submitted_after", &f.submitted_after),
            submitted_before: v.optional_time("filter.submitted_before", &f.submitted_before),
            state: v.optional_enum("filter.state", f.state, TriageState::from_wire),
        };
        if f.categories.len() > 50 {
            v.add("filter.categories", "at most 50 categories");
        } else {
            for (i, c) in f.categories.iter().enumerate() {
                if c.is_empty() || c.chars().count() > 64 {
                    v.add(
                        format!("filter.categories[{i}]"),
                        "must be a category code (1 to 64 characters)",
                    );
                }
            }
        }
        let limit = page::size(&mut v, "page_size", req.page_size);
        // A token is bound to the filter it was issued for.
        let scope = format!("ListTriageQueue {filter:?}");
        let tokens = self.db.page_tokens();
        let after = v
            .check(
                "page_token",
                tokens.open::<Page>(scope.as_bytes(), &req.page_token),
            )
            .flatten();
        v.finish().map_err(ClassificationError::from)?;

        let conn = self.db.read().await.map_err(ClassificationError::from)?;
        let mut rows = store::list(conn, &filter, after, limit + 1)
            .await
            .map_err(ClassificationError::from)?;
        let next_page_token = page::cut(&mut rows, limit, |r| {
            tokens.seal(
                scope.as_bytes(),
                &Page {
                    submitted_at: r.submitted_at,
                    report_id: r.report_id,
                },
            )
        });
        Ok(Response::new(pb::ListTriageQueueResponse {
            entries: rows.into_iter().map(entry_to_wire).collect(),
            next_page_token,
        }))
    }
}
