//! Typed configuration shared by every service: defaults → optional TOML file →
//! `CUSTOS_*` environment (`__` separates sections) → command-line flags, loaded and
//! validated once at start. Secrets are `SecretString`s and never appear in logs.

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment, Provider,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    pub fn invalid(key: &str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Checks the address of another custos service: `http://host[:port]` (services talk
/// h2c inside the cluster).
pub fn check_service_url(key: &str, url: &str) -> Result<(), ConfigError> {
    url.parse::<tonic::transport::Uri>()
        .ok()
        .filter(|u| u.scheme_str() == Some("http") && u.host().is_some())
        .map(|_| ())
        .ok_or_else(|| {
            ConfigError::invalid(
                key,
                format!("`{url}` is not an http:// address (services talk h2c inside the cluster)"),
            )
        })
}

/// Checks what types alone cannot; the error names the key.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// The layers, in order: optional TOML `file`, `CUSTOS_*` environment, then `flags`
/// (`(dotted key, value)` pairs from the command line).
fn layers(
    file: Option<&std::path::Path>,
    flags: &[(&str, serde_json::Value)],
) -> Result<Figment, ConfigError> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError::invalid(
                "--config",
                format!("file {} does not exist", file.display()),
            ));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    // Every key lives in a section, so only `CUSTOS_<SECTION>__<KEY>` variables are
    // configuration; others (`CUSTOS_CONFIG`, the CLI's `CUSTOS_TOKEN`) are not ours.
    figment = figment.merge(
        Env::prefixed("CUSTOS_")
            .filter(|key| key.as_str().contains("__"))
            .split("__"),
    );
    for (key, value) in flags {
        figment = figment.merge(Serialized::default(key, value));
    }
    Ok(figment)
}

/// Loads `T` from its layers and validates it.
pub fn load<T>(
    file: Option<&std::path::Path>,
    flags: &[(&str, serde_json::Value)],
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    let config: T = layers(file, flags)?.extract().map_err(Box::new)?;
    config.validate()?;
    Ok(config)
}

/// A service's whole configuration: the sections every service shares, and its own
/// settings under `[<service name>]` (e.g. `[intake]`). A service declares only its own.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig<S> {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    pub feed: FeedConfig,
    pub service: S,
}

/// The sections every service has.
const COMMON_SECTIONS: [&str; 5] = ["server", "database", "auth", "telemetry", "feed"];

impl<S: DeserializeOwned + Default + Validate> ServiceConfig<S> {
    /// Loads the layers; `section` is the service's own section name.
    pub fn load(
        section: &str,
        file: Option<&std::path::Path>,
        flags: &[(&str, serde_json::Value)],
    ) -> Result<Self, ConfigError> {
        let figment = layers(file, flags)?;
        let data = figment.data().map_err(Box::new)?;
        for key in data.values().flat_map(|dict| dict.keys()) {
            if !COMMON_SECTIONS.contains(&key.as_str()) && key != section {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "is not a section of this service's configuration (sections: {}, {section})",
                        COMMON_SECTIONS.join(", ")
                    ),
                ));
            }
        }
        // The common sections in one struct, so that errors name `section.key`; the
        // service's own section is then taken on its own.
        #[derive(Deserialize)]
        struct Common {
            #[serde(default)]
            server: ServerConfig,
            #[serde(default)]
            database: DatabaseConfig,
            #[serde(default)]
            auth: AuthConfig,
            #[serde(default)]
            telemetry: TelemetryConfig,
            #[serde(default)]
            feed: FeedConfig,
        }
        let common: Common = figment.extract().map_err(Box::new)?;
        let service = if figment.contains(section) {
            figment.extract_inner(section).map_err(Box::new)?
        } else {
            S::default()
        };
        let config = Self {
            server: common.server,
            database: common.database,
            auth: common.auth,
            telemetry: common.telemetry,
            feed: common.feed,
            service,
        };
        config.validate()?;
        Ok(config)
    }
}

impl<S: Validate> Validate for ServiceConfig<S> {
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.database.validate()?;
        self.auth.validate()?;
        self.telemetry.validate()?;
        self.feed.validate()?;
        self.service.validate()
    }
}

/// How the gRPC server listens and protects itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Longest a unary call may run (a client's shorter `grpc-timeout` wins).
    pub request_timeout_secs: u64,
    /// Calls served at once; beyond it calls are shed with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Largest request or response message.
    pub max_message_bytes: usize,
    /// Seconds between reporting NOT_SERVING and ending feed streams and closing the
    /// listener on shutdown, so that load balancers stop sending new calls first. The
    /// default (5 s) covers Kubernetes removing the pod from its Service's endpoints.
    pub shutdown_grace_secs: u64,
    /// Longest the server waits for in-flight calls to finish on shutdown.
    pub drain_timeout_secs: u64,
    /// Origins allowed to call with grpc-web from a browser; `*` allows any.
    pub cors_allowed_origins: Vec<String>,
    /// Seconds between heartbeats on an idle event feed.
    pub feed_heartbeat_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            request_timeout_secs: 30,
            max_concurrent_requests: 1024,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace_secs: 5,
            drain_timeout_secs: 20,
            cors_allowed_origins: Vec::new(),
            feed_heartbeat_secs: 15,
        }
    }
}

impl Validate for ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.request_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "server.request_timeout_secs",
                "must be positive",
            ));
        }
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::invalid(
                "server.max_concurrent_requests",
                "must be positive",
            ));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::invalid(
                "server.max_message_bytes",
                "must be at least 1024",
            ));
        }
        if self.feed_heartbeat_secs == 0 {
            return Err(ConfigError::invalid(
                "server.feed_heartbeat_secs",
                "must be positive",
            ));
        }
        for origin in &self.cors_allowed_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
                return Err(ConfigError::invalid(
                    "server.cors_allowed_origins",
                    format!("`{origin}` is not a valid origin"),
                ));
            }
        }
        Ok(())
    }
}

/// Where the service keeps its data.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://path/to/file.db`. May hold a password: never logged.
    pub url: SecretString,
    /// PostgreSQL schema of this service (defaults to the service name).
    pub schema: Option<String>,
    pub max_connections: u32,
    /// Connections for reads outside a transaction (lists and lookups), apart from the
    /// pool above on PostgreSQL; SQLite's readers. Reads beyond this many wait their
    /// turn: more at once than the database has cores only share its cores and
    /// lengthen every read's tail: keep the sum over every service's replicas near
    /// twice the database server's cores (a maximum: replicas that read little use few).
    pub max_read_connections: u32,
    /// Seconds between database health probes.
    pub health_check_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from(""),
            schema: None,
            max_connections: 16,
            max_read_connections: 8,
            health_check_secs: 2,
        }
    }
}

impl Validate for DatabaseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.expose_secret();
        if url.is_empty() {
            return Err(ConfigError::invalid("database.url", "is required"));
        }
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            return Err(ConfigError::invalid(
                "database.url",
                "must start with postgres://, postgresql:// or sqlite:",
            ));
        }
        if let Some(problem) = postgres_without_tls(url) {
            return Err(ConfigError::invalid("database.url", problem));
        }
        if let Some(schema) = &self.schema
            && (schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        {
            return Err(ConfigError::invalid(
                "database.schema",
                "must be lowercase letters, digits and underscores",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be positive",
            ));
        }
        if self.max_read_connections == 0 {
            return Err(ConfigError::invalid(
                "database.max_read_connections",
                "must be positive",
            ));
        }
        if self.health_check_secs == 0 {
            return Err(ConfigError::invalid(
                "database.health_check_secs",
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// A PostgreSQL URL that would talk to a server beyond this machine without saying how
/// to use TLS: the driver's default (`prefer`) falls back to plain text without a word.
fn postgres_without_tls(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    if rest.contains("sslmode=") {
        return None;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let local = host.is_empty() || matches!(host, "localhost" | "127.0.0.1" | "::1");
    (!local).then_some(
        "names a server beyond this machine without sslmode: add sslmode=verify-full \
         (with sslrootcert=…), or sslmode=require; sslmode=disable only on a network you trust",
    )
}

/// How bearer tokens are verified.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// Claim that holds the roles (an array of strings, or one space-separated string).
    pub roles_claim: String,
    /// HS256 shared secret, for development. Never logged.
    pub hs256_secret: Option<SecretString>,
    /// JWKS file with the RS256 / ES256 public keys, for production.
    pub jwks_file: Option<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Seconds between checks of the JWKS file for new keys (0: at every call).
    pub jwks_reload_secs: u64,
    /// A bearer token with the `service` role that this service presents to the others'
    /// feeds, read again for every subscription so that it can be rotated (e.g. a
    /// projected token). Without it, a service with `hs256_secret` (development)
    /// mints its own.
    pub service_token_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "custos".into(),
            audience: "custos".into(),
            roles_claim: "roles".into(),
            hs256_secret: None,
            jwks_file: None,
            leeway_secs: 30,
            jwks_reload_secs: 10,
            service_token_file: None,
        }
    }
}

impl Validate for AuthConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::invalid("auth.issuer", "is required"));
        }
        if self.audience.is_empty() {
            return Err(ConfigError::invalid("auth.audience", "is required"));
        }
        if self.roles_claim.is_empty() {
            return Err(ConfigError::invalid("auth.roles_claim", "is required"));
        }
        match (&self.hs256_secret, &self.jwks_file) {
            (None, None) => Err(ConfigError::invalid(
                "auth.hs256_secret",
                "set auth.hs256_secret (development) or auth.jwks_file (production)",
            )),
            // A shared secret that every service knows would let any of them mint an
            // admin token that the others accept: with real keys, it must not be there.
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "auth.hs256_secret",
                "must not be set together with auth.jwks_file: a shared secret on every \
                 service would let any of them mint tokens the others accept",
            )),
            (Some(secret), _) if secret.expose_secret().len() < 32 => Err(ConfigError::invalid(
                "auth.hs256_secret",
                "must be at least 32 characters",
            )),
            (_, Some(path)) if !path.exists() => Err(ConfigError::invalid(
                "auth.jwks_file",
                format!("file {} does not exist", path.display()),
            )),
            _ => Ok(()),
        }
    }
}

/// Log output. OpenTelemetry export is configured by the standard `OTEL_*` variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `tracing` filter directives; `RUST_LOG` wins when set.
    pub log_filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Plain,
            log_filter: "info".into(),
        }
    }
}

impl Validate for TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.log_filter)
            .map(|_| ())
            .map_err(|e| ConfigError::invalid("telemetry.log_filter", e.to_string()))
    }
}

/// Event feeds: how this service's feed serves subscribers and how its consumers of
/// other services' feeds retry.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Seconds a feed's events may wait behind an open transaction before a WARN that
    /// names it.
    pub held_back_warning_secs: u64,
    /// Failed attempts at one event before a consumer parks it and moves on.
    pub consumer_max_attempts: u32,
    /// Milliseconds before a consumer's first retry of an event (then doubling, to 5 s).
    pub consumer_retry_ms: u64,
    /// Seconds between a standby replica's attempts to take a consumer's lease.
    pub consumer_standby_secs: u64,
    /// Seconds between checks that a consumer's lease connection is alive.
    pub consumer_lease_check_secs: u64,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            held_back_warning_secs: 30,
            consumer_max_attempts: 5,
            consumer_retry_ms: 200,
            consumer_standby_secs: 2,
            consumer_lease_check_secs: 5,
        }
    }
}

impl Validate for FeedConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.consumer_max_attempts == 0 {
            return Err(ConfigError::invalid(
                "feed.consumer_max_attempts",
                "must be positive",
            ));
        }
        for (key, value) in [
            ("feed.consumer_retry_ms", self.consumer_retry_ms),
            ("feed.consumer_standby_secs", self.consumer_standby_secs),
            (
                "feed.consumer_lease_check_secs",
                self.consumer_lease_check_secs,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be positive"));
            }
        }
        Ok(())
    }
}

impl FeedConfig {
    pub fn consumer_options(&self) -> crate::consumer::ConsumerOptions {
        use std::time::Duration;
        crate::consumer::ConsumerOptions {
            max_attempts: self.consumer_max_attempts,
            retry_backoff: Duration::from_millis(self.consumer_retry_ms),
            standby_retry: Duration::from_secs(self.consumer_standby_secs),
            lease_check: Duration::from_secs(self.consumer_lease_check_secs),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

#[cfg(test)]
mod tests;
