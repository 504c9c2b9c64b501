//! Typed configuration shared by every service: defaults → optional TOML file →
//! `CUSTOS_*` environment (`__` separates sections) → command-line flags, loaded and
//! validated once at start. Secrets are `SecretString`s and never appear in logs.

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
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

/// Checks what types alone cannot; the error names the key.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads `T` from its layers. `file` is the optional TOML file; `flags` are `(dotted key,
/// value)` pairs set on the command line, applied last.
pub fn load<T>(
    file: Option<&std::path::Path>,
    flags: &[(&str, serde_json::Value)],
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
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
    let config: T = figment.extract().map_err(Box::new)?;
    config.validate()?;
    Ok(config)
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
    /// Seconds between reporting NOT_SERVING and closing the listener on shutdown, so
    /// that load balancers stop sending new calls first.
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
            shutdown_grace_secs: 0,
            drain_timeout_secs: 30,
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
    /// Seconds between database health probes.
    pub health_check_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from(""),
            schema: None,
            max_connections: 16,
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
        if self.health_check_secs == 0 {
            return Err(ConfigError::invalid(
                "database.health_check_secs",
                "must be positive",
            ));
        }
        Ok(())
    }
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

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        server: ServerConfig,
        database: DatabaseConfig,
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            self.server.validate()?;
            self.database.validate()
        }
    }

    #[test]
    // figment's Jail closure returns figment's own (large) error type.
    #[allow(clippy::result_large_err)]
    fn layers_apply_in_order_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custos.toml",
                "[server]\nrequest_timeout_secs = 7\n[database]\nurl = \"sqlite://file.db\"\n",
            )?;
            jail.set_env("CUSTOS_SERVER__REQUEST_TIMEOUT_SECS", "9");
            jail.set_env("CUSTOS_TOKEN", "not configuration");
            let flags = [("database.url", serde_json::json!("postgres://db/custos"))];
            let config: Sample = load(Some(std::path::Path::new("custos.toml")), &flags).unwrap();
            assert_eq!(
                config.server.request_timeout_secs, 9,
                "environment beats the file"
            );
            assert_eq!(
                config.database.url.expose_secret(),
                "postgres://db/custos",
                "flags beat everything"
            );
            assert!(
                !format!("{config:?}").contains("postgres://db"),
                "secrets are not printed"
            );

            jail.set_env("CUSTOS_SERVER__REQUEST_TIMEOUT_SECS", "soon");
            let err = load::<Sample>(None, &flags).unwrap_err().to_string();
            assert!(
                err.to_lowercase().contains("server.request_timeout_secs"),
                "{err}"
            );
            jail.set_env("CUSTOS_SERVER__REQUEST_TIMEOUT_SECS", "0");
            let err = load::<Sample>(None, &flags).unwrap_err().to_string();
            assert_eq!(
                err,
                "configuration key `server.request_timeout_secs`: must be positive"
            );
            Ok(())
        });
    }
}
