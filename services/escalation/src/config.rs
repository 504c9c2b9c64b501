//! Escalation's own settings, the `[escalation]` section (the kit's sections come with
//! every service).

use std::path::PathBuf;

use custos_kit::config::{ConfigError, Validate, check_service_url};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscalationSettings {
    /// Address of the intake service, whose feed opens an escalation for every report,
    /// e.g. `http://custos-intake:50051`. Required.
    pub intake_url: Option<String>,
    /// Address of the classification service, whose feed opens, re-routes and stops
    /// escalations of incidents. Required.
    pub classification_url: Option<String>,
    /// A directory to seed contacts, lists and policies from when the directory is
    /// empty (`config/directory.example.toml` shows the format).
    pub directory_file: Option<PathBuf>,
    /// Days a provider has to fix a reported weakness before the central point of
    /// contact is told (policy 14.1.2).
    pub provider_fix_days: u32,
    /// Deadlines applied per transaction by each replica's timer.
    pub timer_batch: u32,
    /// The longest a replica's timer sleeps before looking for due deadlines again, in
    /// milliseconds: deadlines set by another replica are seen within it.
    pub timer_poll_ms: u64,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        Self {
            intake_url: None,
            classification_url: None,
            directory_file: None,
            provider_fix_days: 30,
            timer_batch: 500,
            timer_poll_ms: 500,
        }
    }
}

impl Validate for EscalationSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, url, example) in [
            (
                "escalation.intake_url",
                &self.intake_url,
                "http://custos-intake:50051",
            ),
            (
                "escalation.classification_url",
                &self.classification_url,
                "http://custos-classification:50051",
            ),
        ] {
            match url {
                None => {
                    return Err(ConfigError::invalid(
                        key,
                        format!("is required, e.g. {example}"),
                    ));
                }
                Some(url) => check_service_url(key, url)?,
            }
        }
        if !(1..=3_650).contains(&self.provider_fix_days) {
            return Err(ConfigError::invalid(
                "escalation.provider_fix_days",
                "must be 1 to 3650",
            ));
        }
        if !(1..=10_000).contains(&self.timer_batch) {
            return Err(ConfigError::invalid(
                "escalation.timer_batch",
                "must be 1 to 10000",
            ));
        }
        if !(10..=60_000).contains(&self.timer_poll_ms) {
            return Err(ConfigError::invalid(
                "escalation.timer_poll_ms",
                "must be 10 to 60000",
            ));
        }
        if let Some(path) = &self.directory_file {
            crate::seed::DirectoryFile::load(path)
                .map_err(|e| ConfigError::invalid("escalation.directory_file", e))?;
        }
        Ok(())
    }
}
