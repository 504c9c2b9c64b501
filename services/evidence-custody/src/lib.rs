//! The evidence-custody service: evidence items of incidents, their write-once content
//! (a local directory or an S3-compatible bucket), and a tamper-evident chain of custody
//! (a hash chain per item, signed Merkle checkpoints over the whole log) that records
//! every action and every read (policy 14.2.1, 14.2.2).

pub mod api;
pub mod chain;
pub mod checkpoint;
pub mod config;
pub mod content;
pub mod error;
pub mod evidence;
pub mod feeds;
pub mod report;
pub mod signing;
pub mod store;

use std::sync::Arc;

pub use config::CustodySettings;

use custos_kit::{
    config::ConfigError,
    service::{BuildError, Context, Service},
    storage::Migrations,
};
use custos_proto::custody::v1::custody_service_server::CustodyServiceServer;

/// Evidence custody as a custos service.
#[derive(Debug)]
pub struct Custody;

/// Custody's whole configuration: the kit's sections and `[custody]`.
pub type Config = custos_kit::config::ServiceConfig<CustodySettings>;

/// Opens the content store the settings name.
pub fn content_store(
    settings: &config::StorageSettings,
) -> Result<content::ContentStore, ConfigError> {
    match (&settings.dir, &settings.s3) {
        (Some(dir), None) => content::LocalDir::open(dir)
            .map(content::ContentStore::Local)
            .map_err(|e| ConfigError::invalid("custody.storage.dir", e.to_string())),
        (None, Some(s3)) => content::S3Bucket::new(s3)
            .map(content::ContentStore::S3)
            .map_err(|e| ConfigError::invalid("custody.storage.s3", e.to_string())),
        _ => Err(ConfigError::invalid(
            "custody.storage",
            "needs `dir` or `s3`, not both",
        )),
    }
}

impl Service for Custody {
    const NAME: &'static str = "custody";
    type Settings = CustodySettings;

    fn migrations() -> Migrations {
        custos_kit::migrations!()
    }

    async fn build(context: &mut Context, settings: CustodySettings) -> Result<(), BuildError> {
        let db = context.db().clone();
        let store = content_store(&settings.storage)?;
        store.check().await.map_err(|e| {
            ConfigError::invalid("custody.storage", format!("cannot be written: {e}"))
        })?;
        let key_file = settings
            .signing_key_file
            .clone()
            .ok_or_else(|| ConfigError::invalid("custody.signing_key_file", "is required"))?;
        let signer = Arc::new(
            signing::Signer::load(&key_file, false)
                .map_err(|e| ConfigError::invalid("custody.signing_key_file", e))?,
        );
        tracing::info!(key_id = signer.key_id(), "custody signing key loaded");
        let classification_url = settings
            .classification_url
            .clone()
            .ok_or_else(|| ConfigError::invalid("custody.classification_url", "is required"))?;
        context.follow(
            feeds::CLASSIFICATION_CONSUMER,
            "custody.classification_url",
            &classification_url,
            feeds::ClassificationEvents,
        )?;
        context.publish_feed(api::FEED);
        context.allow_long_running(api::LONG_RUNNING);
        context.add_service(CustodyServiceServer::new(api::CustodyApi::new(
            db.clone(),
            store.clone(),
            signer.clone(),
            std::time::Duration::from_secs(settings.upload_idle_secs),
        )));
        tokio::spawn(checkpoint::run(
            db,
            signer,
            store,
            std::time::Duration::from_secs(settings.checkpoint_interval_secs),
            time::Duration::hours(i64::from(settings.upload_expiry_hours)),
            context.stopping(),
        ));
        Ok(())
    }
}
