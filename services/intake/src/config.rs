//! Intake's configuration: the kit's common sections plus intake's own.

use std::path::PathBuf;

use custos_kit::config::{
    AuthConfig, ConfigError, DatabaseConfig, ServerConfig, TelemetryConfig, Validate,
};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    pub intake: IntakeSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    /// Accept anonymous reports without a bearer token (policy section 11).
    pub anonymous_reporting: bool,
    /// Days a service provider has to respond to a reported weakness before it is overdue.
    pub provider_response_days: u32,
    /// Seconds a reported time may lie in the future (clock skew between devices).
    pub max_clock_skew_secs: u32,
    /// A replacement for the shipped taxonomy (`config/taxonomy.toml`).
    pub taxonomy_file: Option<PathBuf>,
    /// Prefix of report references, e.g. `SIR` for `SIR-2026-000042`.
    pub reference_prefix: String,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            anonymous_reporting: true,
            provider_response_days: 10,
            max_clock_skew_secs: 300,
            taxonomy_file: None,
            reference_prefix: "SIR".into(),
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.database.validate()?;
        self.auth.validate()?;
        self.telemetry.validate()?;
        let i = &self.intake;
        if i.provider_response_days == 0 {
            return Err(ConfigError::invalid(
                "intake.provider_response_days",
                "must be positive",
            ));
        }
        if i.reference_prefix.is_empty()
            || i.reference_prefix.len() > 8
            || !i.reference_prefix.chars().all(|c| c.is_ascii_uppercase())
        {
            return Err(ConfigError::invalid(
                "intake.reference_prefix",
                "must be 1 to 8 capital letters",
            ));
        }
        if let Some(path) = &i.taxonomy_file {
            crate::taxonomy::Taxonomy::load(path)
                .map_err(|e| ConfigError::invalid("intake.taxonomy_file", e))?;
        }
        Ok(())
    }
}
