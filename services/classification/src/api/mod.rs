//! The gRPC surface of classification. Each handler declares the roles it needs at its
//! top, parses the request into domain values, calls the domain or the store and
//! converts back.

mod matrix;

use std::sync::Arc;

use custos_kit::auth::Role;
use custos_proto::classification::v1::{self as pb, classification_service_server};
use tonic::{Request, Response, Status};

use crate::matrix::RiskMatrix;

/// Roles that risk-assess impacts with the matrix (14.2, 14.2.2).
pub const SCORE: &[Role] = &[Role::SecurityAdvisor, Role::IncidentOfficer, Role::Service];

#[derive(Debug, Clone)]
pub struct ClassificationApi {
    matrix: Arc<RiskMatrix>,
}

impl ClassificationApi {
    pub fn new(matrix: RiskMatrix) -> Self {
        Self {
            matrix: Arc::new(matrix),
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
}
