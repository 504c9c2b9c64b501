//! Test support for every custos service: a fresh database on either backend, a service
//! running on 127.0.0.1:0 that can be stopped gracefully, tokens for any role, and a TCP
//! proxy that can cut a service off from PostgreSQL.
//!
//! PostgreSQL is required, never skipped: `CUSTOS_TEST_DATABASE_URL` names the server
//! (default `postgres://postgres@127.0.0.1:5432/custos_test`, created if missing).

mod database;
mod dump;
pub mod metrics;
mod proxy;
mod running;

pub use database::{Backend, TestDatabase, postgres_url};
pub use dump::{dump_tables, table_names};
pub use proxy::Proxy;
pub use running::Running;

use std::time::Duration;

use custos_kit::{
    auth::{Role, TokenMinter},
    client::ClientInterceptor,
    config::{AuthConfig, FeedConfig, ServerConfig, ServiceConfig, TelemetryConfig},
};
use secrecy::SecretString;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// The HS256 secret every test service trusts.
pub const TEST_SECRET: &str = "custos-test-secret-0123456789abcdef";

/// Runs an async test body once per backend, as `sqlite` and `postgres` test modules.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Sqlite).await }) +
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Postgres).await }) +
        }
    };
}

pub fn auth_config() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SecretString::from(TEST_SECRET)),
        ..AuthConfig::default()
    }
}

/// A server configuration listening on a free loopback port (no shutdown grace period:
/// no load balancer waits on a test).
pub fn server_config() -> ServerConfig {
    ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        cors_allowed_origins: vec!["*".into()],
        shutdown_grace_secs: 0,
        drain_timeout_secs: 10,
        feed_heartbeat_secs: 1,
        ..ServerConfig::default()
    }
}

/// A whole service configuration for a test: a free port, `database`, test tokens, and
/// the service's own `settings`. Consumers retry quickly.
pub fn config<S>(database: &TestDatabase, settings: S) -> ServiceConfig<S> {
    ServiceConfig {
        server: server_config(),
        database: database.config(),
        auth: auth_config(),
        telemetry: TelemetryConfig::default(),
        feed: FeedConfig {
            consumer_retry_ms: 20,
            consumer_standby_secs: 1,
            ..FeedConfig::default()
        },
        service: settings,
    }
}

pub fn minter() -> TokenMinter {
    TokenMinter::from_config(&auth_config()).expect("the test config has a secret")
}

/// A valid token for `subject` with `roles`.
pub fn token(subject: &str, roles: &[Role]) -> String {
    minter().mint(subject, roles, Duration::from_secs(600))
}

/// A channel to a service under test.
pub fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_lazy()
}

/// A channel whose calls carry a token for `subject` with `roles`.
pub fn authed(
    addr: std::net::SocketAddr,
    subject: &str,
    roles: &[Role],
) -> InterceptedService<Channel, ClientInterceptor> {
    let interceptor = ClientInterceptor::bearer(&token(subject, roles)).expect("token is ASCII");
    InterceptedService::new(channel(addr), interceptor)
}

/// A channel whose calls carry no token.
pub fn anonymous(addr: std::net::SocketAddr) -> InterceptedService<Channel, ClientInterceptor> {
    InterceptedService::new(channel(addr), ClientInterceptor::anonymous())
}

/// A channel whose calls carry exactly this token.
pub fn with_token(
    addr: std::net::SocketAddr,
    token: &str,
) -> InterceptedService<Channel, ClientInterceptor> {
    InterceptedService::new(
        channel(addr),
        ClientInterceptor::bearer(token).expect("token is ASCII"),
    )
}

/// The TOML file that a Kubernetes manifest's ConfigMap carries under `key` (e.g.
/// `custody.toml: |`), parsed: for tests that the shipped configuration is valid.
pub fn config_map_toml(manifest: &str, key: &str) -> toml::Table {
    let start = manifest
        .find(&format!("{key}: |"))
        .unwrap_or_else(|| panic!("no `{key}` in the manifest"));
    let end = manifest[start..]
        .find("\n---")
        .map_or(manifest.len(), |e| e + start);
    let text: String = manifest[start..end]
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    toml::from_str(&text).unwrap_or_else(|e| panic!("`{key}` is not TOML: {e}"))
}
