//! The classification service: reports assessed against the organisation's risk impact
//! matrix, the decision that a series of events is an incident, and the incident
//! register with its public business-continuity feed.

pub mod api;
pub mod assessment;
pub mod config;
pub mod continuity;
pub mod error;
pub mod incident;
pub mod intake_feed;
pub mod matrix;
pub mod report;
pub mod series;
pub mod store;

pub use config::ClassificationSettings;

use custos_kit::{
    config::ConfigError,
    service::{BuildError, Context, Service},
    storage::Migrations,
};
use custos_proto::classification::v1::{
    classification_service_server::ClassificationServiceServer,
    incident_service_server::IncidentServiceServer,
};
use custos_proto::continuity::v1::continuity_service_server::ContinuityServiceServer;

use custos_taxonomy::Taxonomy;

use crate::matrix::RiskMatrix;

/// Classification as a custos service.
#[derive(Debug)]
pub struct Classification;

/// Classification's whole configuration: the kit's sections and `[classification]`.
pub type Config = custos_kit::config::ServiceConfig<ClassificationSettings>;

impl Service for Classification {
    const NAME: &'static str = "classification";
    type Settings = ClassificationSettings;

    fn migrations() -> Migrations {
        custos_kit::migrations!()
    }

    async fn build(
        context: &mut Context,
        settings: ClassificationSettings,
    ) -> Result<(), BuildError> {
        let matrix = match &settings.risk_matrix_file {
            Some(path) => RiskMatrix::load(path)
                .map_err(|e| ConfigError::invalid("classification.risk_matrix_file", e))?,
            None => RiskMatrix::policy_default(),
        };
        let taxonomy = match &settings.taxonomy_file {
            Some(path) => Taxonomy::load(path)
                .map_err(|e| ConfigError::invalid("classification.taxonomy_file", e))?,
            None => Taxonomy::default_taxonomy(),
        };
        let intake_url = settings
            .intake_url
            .as_deref()
            .ok_or_else(|| ConfigError::invalid("classification.intake_url", "is required"))?;
        context.follow(
            intake_feed::CONSUMER,
            "classification.intake_url",
            intake_url,
            intake_feed::IntakeEvents {
                series: settings.series(),
            },
        )?;
        let matrix = std::sync::Arc::new(matrix);
        context.add_service(ClassificationServiceServer::new(
            api::ClassificationApi::new(
                context.db().clone(),
                matrix.clone(),
                taxonomy,
                settings.incident_reference_prefix.clone(),
                settings.series(),
            ),
        ));
        context.add_service(IncidentServiceServer::new(api::incident::IncidentApi::new(
            context.db().clone(),
            matrix,
            &settings.business_services,
            &settings.cost_categories,
        )));
        let hub = continuity::Hub::start(
            context.db().clone(),
            settings.continuity_buffer,
            context.stopping(),
        )
        .await?;
        context.add_service(ContinuityServiceServer::new(
            continuity::ContinuityApi::new(
                context.db().clone(),
                hub,
                context.feed_heartbeat(),
                context.stopping(),
            ),
        ));
        context.publish_feed(api::FEED);
        Ok(())
    }
}
