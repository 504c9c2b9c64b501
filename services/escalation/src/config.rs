//! Escalation's own settings, the `[escalation]` section (the kit's sections come with
//! every service).

use std::path::PathBuf;

use custos_kit::config::{ConfigError, Validate, check_service_url};
use secrecy::SecretString;
use serde::Deserialize;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (a relay on the same host or network only).
    None,
    /// STARTTLS, required (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the start (port 465 by default).
    Tls,
}

/// `[escalation.smtp]`: the SMTP server messages are sent through.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// The server's host name. Unset: no SMTP (messages go to `escalation.mail_dir`).
    pub host: Option<String>,
    /// The port; unset: 25 (none), 587 (starttls) or 465 (tls).
    pub port: Option<u16>,
    pub tls: TlsMode,
    /// Credentials, if the server asks for them (the password from a secret:
    /// `CUSTOS_ESCALATION__SMTP__PASSWORD`).
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Seconds to wait for the server before an attempt counts as failed.
    pub timeout_secs: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: None,
            tls: TlsMode::default(),
            username: None,
            password: None,
            timeout_secs: 30,
        }
    }
}

impl SmtpSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscalationSettings {
    /// Address of the intake service, whose feed opens an escalation for every report,
    /// e.g. `http://custos-intake:50051`. Required.
    pub intake_url: Option<String>,
    /// Address of the classification service, whose feed opens, re-routes and stops
    /// escalations of incidents. Required.
    pub classification_url: Option<String>,
    /// Address of the evidence-custody service, whose feed says when evidence is
    /// registered (internal audit is told), e.g. `http://custos-evidence-custody:50051`.
    /// Unset: registrations are not followed (classification's evidence flag still is).
    pub custody_url: Option<String>,
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
    /// The SMTP server.
    pub smtp: SmtpSettings,
    /// With no SMTP server: the directory messages are written to, one `.eml` file each
    /// (standalone mode sets it to `<data dir>/mail`).
    pub mail_dir: Option<PathBuf>,
    /// The sender of every message, e.g. `custos <custos@example.org>`. Required.
    pub mail_from: Option<String>,
    /// Attempts to send a message before it fails for good (and the deputy is told).
    pub mail_max_attempts: u32,
    /// Seconds before the first retry of a message the server did not take; each next
    /// retry waits twice as long, up to an hour.
    pub mail_retry_secs: u32,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        Self {
            intake_url: None,
            classification_url: None,
            custody_url: None,
            directory_file: None,
            provider_fix_days: 30,
            timer_batch: 200,
            timer_poll_ms: 500,
            smtp: SmtpSettings::default(),
            mail_dir: None,
            mail_from: None,
            mail_max_attempts: 8,
            mail_retry_secs: 30,
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
        if let Some(url) = &self.custody_url {
            check_service_url("escalation.custody_url", url)?;
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
        match (&self.smtp.host, &self.mail_dir) {
            (None, None) => {
                return Err(ConfigError::invalid(
                    "escalation.smtp.host",
                    "is required (or escalation.mail_dir, to write messages to a directory instead)",
                ));
            }
            (Some(host), _) if host.trim().is_empty() => {
                return Err(ConfigError::invalid(
                    "escalation.smtp.host",
                    "must not be empty",
                ));
            }
            _ => {}
        }
        if self.smtp.username.is_some() != self.smtp.password.is_some() {
            return Err(ConfigError::invalid(
                "escalation.smtp.password",
                "username and password go together",
            ));
        }
        if !(1..=600).contains(&self.smtp.timeout_secs) {
            return Err(ConfigError::invalid(
                "escalation.smtp.timeout_secs",
                "must be 1 to 600",
            ));
        }
        match &self.mail_from {
            None => {
                return Err(ConfigError::invalid(
                    "escalation.mail_from",
                    "is required: the sender of every message, e.g. custos <custos@example.org>",
                ));
            }
            Some(from) => {
                from.parse::<lettre::message::Mailbox>()
                    .map_err(|e| ConfigError::invalid("escalation.mail_from", e.to_string()))?;
            }
        }
        if !(1..=100).contains(&self.mail_max_attempts) {
            return Err(ConfigError::invalid(
                "escalation.mail_max_attempts",
                "must be 1 to 100",
            ));
        }
        if !(1..=3_600).contains(&self.mail_retry_secs) {
            return Err(ConfigError::invalid(
                "escalation.mail_retry_secs",
                "must be 1 to 3600",
            ));
        }
        if let Some(path) = &self.directory_file {
            crate::seed::DirectoryFile::load(path)
                .map_err(|e| ConfigError::invalid("escalation.directory_file", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[escalation]` section of the shipped Kubernetes ConfigMap, as the service
    /// reads it (the password comes from a Secret, through the environment).
    #[test]
    fn the_shipped_kubernetes_config_is_valid() {
        let manifest = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/kubernetes/escalation.yaml"
        ))
        .unwrap();
        let table = custos_testing::config_map_toml(&manifest, "escalation.toml");
        let mut settings: EscalationSettings = table["escalation"]
            .clone()
            .try_into()
            .expect("the [escalation] section");
        assert_eq!(settings.smtp.tls, TlsMode::Starttls);
        assert!(settings.validate().is_err(), "no password yet");
        settings.smtp.password = Some(SecretString::from("from-the-secret"));
        settings.validate().unwrap();
    }
}
