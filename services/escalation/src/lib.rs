//! The escalation service: who is told of reports and incidents (contacts, the policy's
//! lists, escalation policies), the nominees who must all act, the deadlines that move
//! an escalation up its chain, and the messages it sends.

pub mod api;
pub mod config;
pub mod directory;
pub mod engine;
pub mod error;
pub mod escalation;
pub mod feeds;
pub mod mail;
mod message;
pub mod seed;
pub mod store;
pub mod timer;

pub use config::EscalationSettings;

use custos_kit::{
    config::ConfigError,
    service::{BuildError, Context, Service},
    storage::Migrations,
};
use custos_proto::escalation::v1::{
    directory_service_server::DirectoryServiceServer,
    escalation_service_server::EscalationServiceServer,
};

/// Escalation as a custos service.
#[derive(Debug)]
pub struct Escalation;

/// Escalation's whole configuration: the kit's sections and `[escalation]`.
pub type Config = custos_kit::config::ServiceConfig<EscalationSettings>;

impl Service for Escalation {
    const NAME: &'static str = "escalation";
    type Settings = EscalationSettings;

    fn migrations() -> Migrations {
        custos_kit::migrations!()
    }

    async fn build(context: &mut Context, settings: EscalationSettings) -> Result<(), BuildError> {
        let db = context.db().clone();
        if let Some(path) = &settings.directory_file {
            let file = seed::DirectoryFile::load(path)
                .map_err(|e| ConfigError::invalid("escalation.directory_file", e))?;
            if file.apply(&db).await? {
                tracing::info!(file = %path.display(), "directory seeded from escalation.directory_file");
            } else {
                tracing::info!(file = %path.display(),
                    "escalation.directory_file not applied: the directory is not empty (change it over the API)");
            }
        }
        let required = |key: &str, value: &Option<String>| {
            value
                .clone()
                .ok_or_else(|| ConfigError::invalid(key, "is required"))
        };
        let intake_url = required("escalation.intake_url", &settings.intake_url)?;
        let classification_url = required(
            "escalation.classification_url",
            &settings.classification_url,
        )?;
        context.follow(
            feeds::INTAKE_CONSUMER,
            "escalation.intake_url",
            &intake_url,
            feeds::IntakeEvents {
                provider_fix: time::Duration::days(i64::from(settings.provider_fix_days)),
            },
        )?;
        context.follow(
            feeds::CLASSIFICATION_CONSUMER,
            "escalation.classification_url",
            &classification_url,
            feeds::ClassificationEvents,
        )?;
        match &settings.custody_url {
            Some(url) => context.follow(
                feeds::CUSTODY_CONSUMER,
                "escalation.custody_url",
                url,
                feeds::CustodyEvents,
            )?,
            None => tracing::warn!(
                "escalation.custody_url is not set: internal audit is not told when evidence is registered (only when classification flags an incident as needing evidence)"
            ),
        }
        context.add_service(DirectoryServiceServer::new(api::DirectoryApi::new(
            db.clone(),
        )));
        context.add_service(EscalationServiceServer::new(api::EscalationApi::new(
            db.clone(),
        )));
        let timer = timer::Timer::new(
            db.clone(),
            timer::system_clock(),
            timer::TimerSettings {
                batch: i64::from(settings.timer_batch),
                poll: std::time::Duration::from_millis(settings.timer_poll_ms),
            },
        );
        tokio::spawn(timer.run(context.stopping()));
        let outlet = match (&settings.smtp.host, &settings.mail_dir) {
            (Some(_), _) => mail::Outlet::smtp(&settings.smtp)
                .map_err(|e| ConfigError::invalid("escalation.smtp", e))?,
            (None, Some(dir)) => {
                tracing::info!(dir = %dir.display(), "no SMTP server configured: messages are written to the mail directory, one .eml file each");
                mail::Outlet::directory(dir.clone())
                    .map_err(|e| ConfigError::invalid("escalation.mail_dir", e))?
            }
            (None, None) => {
                return Err(ConfigError::invalid("escalation.smtp.host", "is required").into());
            }
        };
        let from = settings
            .mail_from
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                ConfigError::invalid("escalation.mail_from", e.to_string())
            })?;
        let sender = mail::Sender::new(
            context.db().clone(),
            outlet,
            from,
            timer::system_clock(),
            mail::SenderSettings {
                batch: 100,
                lease: time::Duration::seconds(
                    i64::try_from(settings.smtp.timeout_secs).unwrap_or(30) * 4,
                ),
                retry_base: time::Duration::seconds(i64::from(settings.mail_retry_secs)),
                max_attempts: i32::try_from(settings.mail_max_attempts).unwrap_or(8),
                poll: std::time::Duration::from_millis(settings.timer_poll_ms),
            },
        );
        tokio::spawn(sender.run(context.stopping()));
        Ok(())
    }
}
