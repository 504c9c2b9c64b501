//! Starting escalation for a test, and building its requests.

use custos_escalation::{Config, Escalation, EscalationSettings};
use custos_kit::{auth::Role, client::ClientInterceptor, service::App, storage::Db};
use custos_proto::escalation::v1::{
    self as pb, directory_service_client::DirectoryServiceClient,
    escalation_service_client::EscalationServiceClient,
};
use custos_testing::{Backend, Running, TestDatabase};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub type Directory = DirectoryServiceClient<InterceptedService<Channel, ClientInterceptor>>;
pub type Escalations = EscalationServiceClient<InterceptedService<Channel, ClientInterceptor>>;

/// Who manages the directory in tests.
pub const OWNER: &[Role] = &[Role::PolicyOwner];

/// Where escalation looks for intake and classification when a test does not need
/// them: nothing listens there, so its consumers keep retrying quietly.
pub const NOWHERE: &str = "http://127.0.0.1:1";

pub fn settings(intake_url: &str, classification_url: &str) -> EscalationSettings {
    EscalationSettings {
        intake_url: Some(intake_url.into()),
        classification_url: Some(classification_url.into()),
        mail_from: Some("custos <custos@example.org>".into()),
        ..EscalationSettings::default()
    }
}

pub struct TestEscalation {
    pub running: Running,
    pub db: Db,
    pub database: TestDatabase,
    /// Where messages go when the test gives no SMTP server.
    pub mail_dir: tempfile::TempDir,
}

impl TestEscalation {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, settings(NOWHERE, NOWHERE), |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        mut settings: EscalationSettings,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let mail_dir = tempfile::tempdir().unwrap();
        if settings.smtp.host.is_none() && settings.mail_dir.is_none() {
            settings.mail_dir = Some(mail_dir.path().join("mail"));
        }
        let database = TestDatabase::new(backend).await;
        let mut config: Config = custos_testing::config(&database, settings);
        adjust(&mut config);
        let app = App::build::<Escalation>(config)
            .await
            .expect("escalation starts");
        let db = app.db().clone();
        let running = Running::spawn(app.local_addr(), |signal| app.run_until(signal));
        Self {
            running,
            db,
            database,
            mail_dir,
        }
    }

    pub fn directory(&self, subject: &str, roles: &[Role]) -> Directory {
        DirectoryServiceClient::new(custos_testing::authed(self.running.addr, subject, roles))
    }

    pub fn escalations(&self, subject: &str, roles: &[Role]) -> Escalations {
        EscalationServiceClient::new(custos_testing::authed(self.running.addr, subject, roles))
    }

    pub fn owner(&self) -> Directory {
        self.directory("policy-owner", OWNER)
    }
}

pub fn contact(name: &str) -> pb::Contact {
    pb::Contact {
        display_name: name.into(),
        job_title: "Responder".into(),
        email: format!("{}@example.org", name.to_lowercase().replace(' ', ".")),
        ..Default::default()
    }
}

/// Creates a contact and returns it.
pub async fn create(dir: &mut Directory, c: pb::Contact) -> pb::Contact {
    dir.create_contact(pb::CreateContactRequest {
        contact: Some(c),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("contact created")
    .into_inner()
    .contact
    .unwrap()
}

/// Creates `n` contacts named `prefix 1`…; returns their ids.
pub async fn people(dir: &mut Directory, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 1..=n {
        let mut c = contact(&format!("{prefix} {i}"));
        c.token_subject = format!("{}-{i}", prefix.to_lowercase());
        ids.push(create(dir, c).await.id);
    }
    ids
}

/// The field paths a status's BadRequest names.
pub fn fields(status: &tonic::Status) -> Vec<String> {
    custos_kit::error::status_violations(status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}

pub fn reason(status: &tonic::Status) -> String {
    custos_kit::error::status_reason(status)
        .map(|(r, d)| {
            assert_eq!(d, "escalation.custos");
            r
        })
        .unwrap_or_default()
}

pub fn minutes(n: i64) -> Option<custos_proto::prost_types::Duration> {
    Some(custos_proto::prost_types::Duration {
        seconds: n * 60,
        nanos: 0,
    })
}

/// What the status's BadRequest says of each field, joined.
pub fn described(status: &tonic::Status) -> String {
    custos_kit::error::status_violations(status)
        .into_iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Polls `condition` every 20 ms until it holds, failing after 20 s.
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut condition: F) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        tick.tick().await;
        if condition().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
    }
}
