//! The escalation service: who is told of reports and incidents (contacts, the policy's
//! lists, escalation policies), the nominees who must all act, the deadlines that move
//! an escalation up its chain, and the messages it sends.

pub mod api;
pub mod config;
pub mod directory;
pub mod engine;
pub mod error;
pub mod escalation;
pub mod store;

pub use config::EscalationSettings;

use custos_kit::{
    service::{BuildError, Context, Service},
    storage::Migrations,
};
use custos_proto::escalation::v1::directory_service_server::DirectoryServiceServer;

/// Escalation as a custos service.
#[derive(Debug)]
pub struct Escalation;

/// Escalation's whole configuration: the kit's sections and `[escalation]`.
pub type Config = custos_kit::config::ServiceConfig<EscalationSettings>;

impl Service for Escalation {
    const NAME: &'static str = "escalation";
    type Settings = EscalationSettings;

    fn migrations() -> Migrations {
        custos_kit::migrations!()
    }

    async fn build(context: &mut Context, _settings: EscalationSettings) -> Result<(), BuildError> {
        context.add_service(DirectoryServiceServer::new(api::DirectoryApi::new(
            context.db().clone(),
        )));
        Ok(())
    }
}
