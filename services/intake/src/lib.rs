//! The intake service: reports of security events and weaknesses, named or anonymous,
//! their amendments and follow-ups, and weaknesses reported to service providers.

pub mod api;
pub mod classification_feed;
pub mod config;
pub mod error;
pub mod guidance;
pub mod match_key;
pub mod receipt;
pub mod report;
pub mod store;

pub use config::IntakeSettings;

use custos_kit::{
    config::ConfigError,
    service::{BuildError, Context, Service},
    storage::Migrations,
};
use custos_proto::intake::v1::intake_service_server::IntakeServiceServer;

use custos_taxonomy::Taxonomy;

use crate::{match_key::MatchKeys, receipt::Receipts, store::Store};

/// Intake as a custos service.
#[derive(Debug)]
pub struct Intake;

/// Intake's whole configuration: the kit's sections and `[intake]`.
pub type Config = custos_kit::config::ServiceConfig<IntakeSettings>;

impl Service for Intake {
    const NAME: &'static str = "intake";
    type Settings = IntakeSettings;

    fn migrations() -> Migrations {
        custos_kit::migrations!()
    }

    async fn build(context: &mut Context, settings: IntakeSettings) -> Result<(), BuildError> {
        let taxonomy = match &settings.taxonomy_file {
            Some(path) => {
                Taxonomy::load(path).map_err(|e| ConfigError::invalid("intake.taxonomy_file", e))?
            }
            None => Taxonomy::default_taxonomy(),
        };
        let receipt_secret = settings
            .receipt_secret
            .as_ref()
            .ok_or_else(|| ConfigError::invalid("intake.receipt_secret", "is required"))?;
        let receipts = Receipts::new(receipt_secret);
        let match_keys = MatchKeys::new(receipt_secret);
        let settings_classification_url = settings.classification_url.clone();
        let store = Store::new(context.db().clone());
        context.add_service(IntakeServiceServer::new(api::IntakeApi::new(
            store, taxonomy, receipts, match_keys, settings,
        )));
        context.allow_anonymous(api::ANONYMOUS_PATHS);
        context.publish_feed(api::FEED);
        match &settings_classification_url {
            Some(url) => context.follow(
                classification_feed::CONSUMER,
                "intake.classification_url",
                url,
                classification_feed::ClassificationEvents,
            )?,
            None => tracing::warn!(
                "intake.classification_url is not set: reports' statuses will not follow \
                 their assessments"
            ),
        }
        Ok(())
    }
}
