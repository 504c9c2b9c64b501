//! Intake's own settings, the `[intake]` section (the kit's sections come with every
//! service).

use std::path::PathBuf;

use custos_kit::config::{ConfigError, Validate};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    /// Accept anonymous reports without a bearer token (policy section 11).
    pub anonymous_reporting: bool,
    /// Days a service provider has to respond to a reported weakness before it is overdue.
    pub provider_response_days: u32,
    /// Seconds a reported time may lie in the future (clock skew between devices).
    pub max_clock_skew_secs: u32,
    /// A replacement for the shipped taxonomy (`shared/taxonomy/taxonomy.toml`); give
    /// classification the same file.
    pub taxonomy_file: Option<PathBuf>,
    /// Prefix of report references, e.g. `SIR` for `SIR-2026-000042`.
    pub reference_prefix: String,
    /// The secret anonymous reporters' receipts are derived under (32+ characters; the
    /// same on every replica). Never logged.
    pub receipt_secret: Option<SecretString>,
    /// Address of the classification service, whose assessments move reports' statuses
    /// (under assessment, escalated to incident, closed), e.g.
    /// `http://custos-classification:50051`. Without it statuses stay RECEIVED.
    pub classification_url: Option<String>,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            anonymous_reporting: true,
            provider_response_days: 10,
            max_clock_skew_secs: 300,
            taxonomy_file: None,
            reference_prefix: "SIR".into(),
            receipt_secret: None,
            classification_url: None,
        }
    }
}

impl Validate for IntakeSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.provider_response_days == 0 {
            return Err(ConfigError::invalid(
                "intake.provider_response_days",
                "must be positive",
            ));
        }
        if self.reference_prefix.is_empty()
            || self.reference_prefix.len() > 8
            || !self
                .reference_prefix
                .chars()
                .all(|c| c.is_ascii_uppercase())
        {
            return Err(ConfigError::invalid(
                "intake.reference_prefix",
                "must be 1 to 8 capital letters",
            ));
        }
        match &self.receipt_secret {
            None => {
                return Err(ConfigError::invalid(
                    "intake.receipt_secret",
                    "is required (32 or more random characters, the same on every replica)",
                ));
            }
            Some(secret) if secret.expose_secret().len() < 32 => {
                return Err(ConfigError::invalid(
                    "intake.receipt_secret",
                    "must be at least 32 characters",
                ));
            }
            Some(_) => {}
        }
        if let Some(url) = &self.classification_url {
            custos_kit::config::check_service_url("intake.classification_url", url)?;
        }
        if let Some(path) = &self.taxonomy_file {
            custos_taxonomy::Taxonomy::load(path)
                .map_err(|e| ConfigError::invalid("intake.taxonomy_file", e))?;
        }
        Ok(())
    }
}
