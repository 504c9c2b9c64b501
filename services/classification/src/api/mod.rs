//! The gRPC surface of classification. Each handler declares the roles it needs at its
//! top, parses the request into domain values, calls the domain or the store and
//! converts back.

mod assess;
pub mod incident;
mod matrix;
mod related;
mod triage;

use std::sync::Arc;

use custos_kit::{auth::Role, storage::Db};
use custos_proto::classification::v1::{self as pb, classification_service_server};
use tonic::{Request, Response, Status};

use custos_taxonomy::Taxonomy;

use crate::{matrix::RiskMatrix, series::Series};

/// The revision of a matrix (RiskMatrix.revision), kept with every impact scored with it.
pub(crate) fn matrix_revision(m: &RiskMatrix) -> String {
    matrix::matrix_to_wire(m).revision
}

/// Roles that work the triage queue.
pub const TRIAGE: &[Role] = &[Role::SecurityAdvisor, Role::Service];

/// Roles that assess reports.
pub const ASSESS: &[Role] = &[Role::SecurityAdvisor];

/// Roles that may follow classification's event feed: the services built on it.
pub const FEED: &[Role] = &[Role::Service];

#[derive(Debug, Clone)]
pub struct ClassificationApi {
    db: Db,
    matrix: Arc<RiskMatrix>,
    /// The matrix as GetRiskMatrix returns it, with its revision.
    matrix_wire: Arc<pb::RiskMatrix>,
    taxonomy: Arc<Taxonomy>,
    /// `INC` in `INC-2026-000042`.
    incident_prefix: Arc<str>,
    series: Series,
}

impl ClassificationApi {
    pub fn new(
        db: Db,
        matrix: Arc<RiskMatrix>,
        taxonomy: Taxonomy,
        incident_prefix: String,
        series: Series,
    ) -> Self {
        let matrix_wire = matrix::matrix_to_wire(&matrix);
        Self {
            db,
            matrix,
            matrix_wire: Arc::new(matrix_wire),
            taxonomy: Arc::new(taxonomy),
            incident_prefix: incident_prefix.into(),
            series,
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl classification_service_server::ClassificationService for ClassificationApi {
    async fn get_risk_matrix(
        &self,
        r: Request<pb::GetRiskMatrixRequest>,
    ) -> Reply<pb::GetRiskMatrixResponse> {
        self.risk_matrix(r)
    }

    async fn score_impact(
        &self,
        r: Request<pb::ScoreImpactRequest>,
    ) -> Reply<pb::ScoreImpactResponse> {
        self.score(r)
    }

    async fn list_triage_queue(
        &self,
        r: Request<pb::ListTriageQueueRequest>,
    ) -> Reply<pb::ListTriageQueueResponse> {
        self.triage_queue(r).await
    }

    async fn assess_report(
        &self,
        r: Request<pb::AssessReportRequest>,
    ) -> Reply<pb::AssessReportResponse> {
        self.assess(r).await
    }

    async fn suggest_related(
        &self,
        r: Request<pb::SuggestRelatedRequest>,
    ) -> Reply<pb::SuggestRelatedResponse> {
        self.related(r).await
    }

    async fn list_assessments(
        &self,
        r: Request<pb::ListAssessmentsRequest>,
    ) -> Reply<pb::ListAssessmentsResponse> {
        self.assessments(r).await
    }
}
