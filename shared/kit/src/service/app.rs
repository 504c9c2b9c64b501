//! A built service: migrated database, bound listener, its consumers, ready to run.

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use super::{BuildError, Context, Service};
use crate::{
    auth::Verifier,
    config::{ConfigError, ServiceConfig},
    consumer::{Consumer, FeedAdmin},
    outbox,
    server::{GrpcServer, ServeError, ServiceParts},
    storage::{Db, StorageError},
};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(ConfigError),
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    #[error("building the service: {0}")]
    Build(BuildError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A built service, ready to run (see `Service`).
pub struct App {
    name: &'static str,
    server: GrpcServer,
    db: Db,
    consumers: Vec<Consumer>,
    stopping: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("addr", &self.server.local_addr())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Connects and migrates the database, builds the service and binds its listener.
    pub async fn build<S: Service>(config: ServiceConfig<S::Settings>) -> Result<Self, AppError> {
        Self::build_with::<S>(config, None).await
    }

    /// As [`App::build`], serving on a listener bound beforehand (`server.listen` then
    /// only names it in messages): a process hosting several services binds them all
    /// first, so that each can be given the others' addresses.
    pub async fn build_on<S: Service>(
        config: ServiceConfig<S::Settings>,
        listener: std::net::TcpListener,
    ) -> Result<Self, AppError> {
        Self::build_with::<S>(config, Some(listener)).await
    }

    async fn build_with<S: Service>(
        config: ServiceConfig<S::Settings>,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Self, AppError> {
        use crate::config::Validate;
        config.validate()?;
        let verifier = Verifier::from_config(&config.auth)?;
        let db = Db::connect(&config.database, S::NAME, S::migrations()).await?;
        tracing::info!(service = S::NAME, backend = ?db.backend(), schema = db.schema(), "database ready");
        let stopping = CancellationToken::new();
        let mut context = Context {
            name: S::NAME,
            db: db.clone(),
            server: config.server.clone(),
            feed: config.feed.clone(),
            auth: config.auth.clone(),
            stopping: stopping.clone(),
            routes: Routes::default(),
            health_names: Vec::new(),
            anonymous_paths: Vec::new(),
            long_running_paths: Vec::new(),
            consumers: Vec::new(),
        };
        S::build(&mut context, config.service)
            .await
            .map_err(AppError::Build)?;
        let consumers = std::mem::take(&mut context.consumers);
        if !consumers.is_empty() {
            context.add_service(FeedAdmin::new(consumers.clone(), S::NAME).into_server());
        }
        let parts = ServiceParts {
            name: S::NAME,
            health_names: context.health_names,
            routes: context.routes,
            anonymous_paths: context.anonymous_paths,
            long_running_paths: context.long_running_paths,
            health_check: Duration::from_secs(config.database.health_check_secs),
        };
        let server = GrpcServer::bind(
            &config.server,
            verifier,
            db.clone(),
            parts,
            stopping.clone(),
            listener,
        )?;
        Ok(Self {
            name: S::NAME,
            server,
            db,
            consumers,
            stopping,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The service's feed consumers (for tests and the admin service).
    pub fn consumers(&self) -> &[Consumer] {
        &self.consumers
    }

    /// Serves until `signal`, then shuts down gracefully (see `GrpcServer::run_until`):
    /// consumers finish the event in hand, and the database closes last.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let Self {
            server,
            db,
            consumers,
            stopping,
            ..
        } = self;
        let relay = tokio::spawn(outbox::relay_notifications(db.clone(), stopping.clone()));
        let mut running = tokio::task::JoinSet::new();
        for consumer in consumers {
            running.spawn(consumer.run(stopping.clone()));
        }
        let result = server.run_until(signal).await;
        stopping.cancel();
        while running.join_next().await.is_some() {}
        relay.abort();
        db.close().await;
        result.map_err(AppError::from)
    }
}
