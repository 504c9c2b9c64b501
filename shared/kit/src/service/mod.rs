//! The skeleton of every custos service. A service implements [`Service`]: its name, its
//! own settings, its migrations, and `build`, which adds its gRPC services, its event
//! feed and its consumers to a [`Context`]. The kit does the rest: flags → config →
//! runtime → telemetry → database → server → shutdown → exit code ([`main`]), and the
//! standalone process hosts any number of services as [`App`]s, each on its own port.

mod app;
mod run;

pub use app::{App, AppError};
pub use run::main;

use std::future::Future;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::Routes};

use crate::{
    auth::Role,
    config::{AuthConfig, ConfigError, FeedConfig, ServerConfig, Validate},
    consumer::{Consumer, EventHandler, FeedSource},
    storage::{Db, Migrations},
};

/// A service's own settings: its `[<name>]` configuration section.
pub trait Settings:
    DeserializeOwned + Default + Validate + Clone + std::fmt::Debug + Send + Sync + 'static
{
}

impl<T> Settings for T where
    T: DeserializeOwned + Default + Validate + Clone + std::fmt::Debug + Send + Sync + 'static
{
}

/// A source of bearer tokens, called for each connection.
pub type ServiceToken = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// What `build` may fail with: bad configuration, or anything else it names.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// A custos service (see the module documentation).
pub trait Service: Send + Sync + 'static {
    /// Short name: the configuration section, the PostgreSQL schema, the logs' `service`
    /// field and the errors' domain (`<name>.custos`). E.g. `intake`.
    const NAME: &'static str;

    /// The service's own configuration section.
    type Settings: Settings;

    /// Its migrations: `custos_kit::migrations!()` in the service crate.
    fn migrations() -> Migrations;

    /// Adds the service's gRPC services, feed and consumers, on a migrated database.
    fn build(
        context: &mut Context,
        settings: Self::Settings,
    ) -> impl Future<Output = Result<(), BuildError>> + Send;
}

/// What a service builds on, and what it hands back to the kit.
pub struct Context {
    pub(crate) name: &'static str,
    pub(crate) db: Db,
    pub(crate) server: ServerConfig,
    pub(crate) feed: FeedConfig,
    pub(crate) auth: AuthConfig,
    pub(crate) stopping: CancellationToken,
    pub(crate) routes: Routes,
    pub(crate) health_names: Vec<&'static str>,
    pub(crate) anonymous_paths: Vec<&'static str>,
    pub(crate) long_running_paths: Vec<&'static str>,
    pub(crate) consumers: Vec<Consumer>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The service's migrated database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Cancelled when the server stops (after its shutdown grace period): long-lived
    /// work of the service's own watches it.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Serves a generated gRPC service, with the configured message limits and a health
    /// status of its own name.
    pub fn add_service<S>(&mut self, service: S)
    where
        S: custos_proto::MessageLimits
            + tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.health_names.push(S::NAME);
        let service = service.with_message_limits(self.server.max_message_bytes);
        let routes = std::mem::take(&mut self.routes);
        self.routes = routes.add_service(service);
    }

    /// Calls that may come without a bearer token (`/pkg.Service/Method`). They never
    /// join the caller's trace.
    pub fn allow_anonymous(&mut self, paths: &[&'static str]) {
        self.anonymous_paths.extend_from_slice(paths);
    }

    /// Calls that `server.request_timeout_secs` does not limit (`/pkg.Service/Method`):
    /// client-streaming uploads, which take as long as their bytes take. A client's own
    /// `grpc-timeout` still applies.
    pub fn allow_long_running(&mut self, paths: &[&'static str]) {
        self.long_running_paths.extend_from_slice(paths);
    }

    /// How often an idle feed stream sends a heartbeat (`server.feed_heartbeat_secs`),
    /// for feeds a service serves itself.
    pub fn feed_heartbeat(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.server.feed_heartbeat_secs)
    }

    /// Serves this service's outbox as `EventFeedService`, to callers with `roles`.
    pub fn publish_feed(&mut self, roles: &'static [Role]) {
        let feed = crate::feed::Feed::new(
            self.db.clone(),
            self.name,
            crate::feed::FeedSettings {
                heartbeat: std::time::Duration::from_secs(self.server.feed_heartbeat_secs),
                held_back_warning: std::time::Duration::from_secs(self.feed.held_back_warning_secs),
            },
            roles,
            self.stopping.clone(),
        );
        self.add_service(feed.into_server());
    }

    /// The bearer token this service presents to the other services, fetched again for
    /// each feed subscription (each connection of a consumer): `auth.service_token_file`,
    /// read each time (so it can rotate), or, in development (`auth.hs256_secret`), a
    /// short-lived token it mints for itself (subject its name, role `service`). With
    /// neither, or a token file that is unreadable or empty at start, it is a
    /// configuration error.
    pub fn service_token(&self) -> Result<ServiceToken, ConfigError> {
        if let Some(path) = &self.auth.service_token_file {
            let path = path.clone();
            let token = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(
                    "auth.service_token_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if token.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "auth.service_token_file",
                    format!("{} is empty", path.display()),
                ));
            }
            let name = self.name;
            return Ok(std::sync::Arc::new(move || {
                match std::fs::read_to_string(&path) {
                    Ok(token) => token.trim().to_owned(),
                    Err(e) => {
                        tracing::error!(service = name, path = %path.display(), error = %e,
                            "cannot read the service token file: calls to other services will be refused");
                        String::new()
                    }
                }
            }));
        }
        if let Some(minter) = crate::auth::TokenMinter::from_config(&self.auth) {
            let name = self.name;
            return Ok(std::sync::Arc::new(move || {
                minter.mint(name, &[Role::Service], std::time::Duration::from_secs(600))
            }));
        }
        Err(ConfigError::invalid(
            "auth.service_token_file",
            "is required to call other services: a bearer token with the `service` role",
        ))
    }

    /// Follows the feed of the service at `url` (the value of configuration key
    /// `url_key`, already checked with `config::check_service_url`) with `handler`, as
    /// consumer `name`, presenting the service token: what a service that consumes
    /// another's feed calls in its `build`.
    pub fn follow(
        &mut self,
        name: &str,
        url_key: &str,
        url: &str,
        handler: impl EventHandler,
    ) -> Result<(), ConfigError> {
        let channel = tonic::transport::Channel::from_shared(url.to_owned())
            .map_err(|e| ConfigError::invalid(url_key, e.to_string()))?
            .connect_lazy();
        let token = self.service_token()?;
        self.consume(name, FeedSource { channel, token }, handler);
        Ok(())
    }

    /// Consumes another service's feed with `handler`, as consumer `name` (e.g.
    /// `classification.intake`). The kit runs it, and serves `FeedAdminService` for the
    /// service's consumers.
    pub fn consume(&mut self, name: &str, source: FeedSource, handler: impl EventHandler) {
        self.consumers.push(Consumer::new(
            name,
            self.db.clone(),
            source,
            handler,
            self.feed.consumer_options(),
        ));
    }
}

impl From<ConfigError> for AppError {
    fn from(e: ConfigError) -> Self {
        AppError::Config(e)
    }
}
