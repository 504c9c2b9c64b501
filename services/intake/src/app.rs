//! Builds the intake service from its configuration: database, store, gRPC server.

use std::{future::Future, net::SocketAddr, time::Duration};

use custos_kit::{
    auth::Verifier,
    config::ConfigError,
    feed::Feed,
    outbox,
    server::{GrpcServer, ServeError, ServiceParts},
    storage::{Db, Migrations, StorageError},
};
use custos_proto::intake::v1::intake_service_server::IntakeServiceServer;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{api, config::Config, store::Store, taxonomy::Taxonomy};

static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Intake's migrations, one set per backend.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A built intake service: migrated database and bound listener, ready to run.
pub struct App {
    server: GrpcServer,
    db: Db,
}

impl App {
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let taxonomy = match &config.intake.taxonomy_file {
            Some(path) => {
                Taxonomy::load(path).map_err(|e| ConfigError::invalid("intake.taxonomy_file", e))?
            }
            None => Taxonomy::default_taxonomy(),
        };
        let verifier = Verifier::from_config(&config.auth)?;
        let db = Db::connect(&config.database, "intake", MIGRATIONS).await?;
        tracing::info!(backend = ?db.backend(), schema = db.schema(), "intake database ready");
        let shutdown = CancellationToken::new();
        let max = config.server.max_message_bytes;
        let api = api::IntakeApi::new(Store::new(db.clone()), taxonomy, config.intake.clone());
        let feed = Feed::new(
            db.clone(),
            "intake",
            Duration::from_secs(config.server.feed_heartbeat_secs),
            api::FEED,
            shutdown.clone(),
        );
        let routes = Routes::new(
            IntakeServiceServer::new(api)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            feed.into_server()
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );
        let parts = ServiceParts {
            name: "intake",
            health_names: vec![
                "custos.intake.v1.IntakeService",
                "custos.common.v1.EventFeedService",
            ],
            routes,
            anonymous_paths: api::ANONYMOUS_PATHS,
            health_check: Duration::from_secs(config.database.health_check_secs),
        };
        let server = GrpcServer::bind(&config.server, verifier, db.clone(), parts, shutdown)?;
        Ok(Self { server, db })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Serves until `signal`, then shuts down gracefully and closes the database.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let relay = tokio::spawn(outbox::relay_notifications(
            self.db.clone(),
            self.server.shutdown_token(),
        ));
        let result = self.server.run_until(signal).await;
        relay.abort();
        self.db.close().await;
        result.map_err(AppError::from)
    }
}
