//! Starting classification (and, for the triage tests, a real intake whose feed it
//! follows) for a test.

use std::time::Duration;

use custos_classification::{Classification, ClassificationSettings, Config};
use custos_kit::{auth::Role, client::ClientInterceptor, service::App, storage::Db};
use custos_proto::{
    classification::v1::classification_service_client::ClassificationServiceClient,
    intake::v1::intake_service_client::IntakeServiceClient,
};
use custos_testing::{Backend, Running, TestDatabase};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub type Client = ClassificationServiceClient<InterceptedService<Channel, ClientInterceptor>>;
pub type IntakeClient = IntakeServiceClient<InterceptedService<Channel, ClientInterceptor>>;

/// Where classification looks for intake when a test does not need one: nothing
/// listens there, so its consumer keeps retrying quietly.
pub const NO_INTAKE: &str = "http://127.0.0.1:1";

pub fn settings(intake_url: &str) -> ClassificationSettings {
    ClassificationSettings {
        intake_url: Some(intake_url.into()),
        ..ClassificationSettings::default()
    }
}

pub struct TestClassification {
    pub running: Running,
    pub app_consumers: Vec<custos_kit::consumer::Consumer>,
    pub db: Db,
    /// Kept so that the database outlives the service.
    _database: TestDatabase,
}

impl TestClassification {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, settings(NO_INTAKE)).await
    }

    pub async fn start_with(backend: Backend, settings: ClassificationSettings) -> Self {
        Self::start_config(backend, settings, |_| {}).await
    }

    pub async fn start_config(
        backend: Backend,
        settings: ClassificationSettings,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let database = TestDatabase::new(backend).await;
        let mut config: Config = custos_testing::config(&database, settings);
        adjust(&mut config);
        let app = App::build::<Classification>(config)
            .await
            .expect("classification starts");
        let db = app.db().clone();
        let app_consumers = app.consumers().to_vec();
        let running = Running::spawn(app.local_addr(), |signal| app.run_until(signal));
        Self {
            running,
            app_consumers,
            db,
            _database: database,
        }
    }

    /// A client for `subject` holding `roles`.
    pub fn client(&self, subject: &str, roles: &[Role]) -> Client {
        ClassificationServiceClient::new(custos_testing::authed(self.running.addr, subject, roles))
    }

    /// A client that sends no token.
    pub fn anonymous(&self) -> Client {
        ClassificationServiceClient::new(custos_testing::anonymous(self.running.addr))
    }
}

/// A real intake service.
pub struct TestIntake {
    pub running: Running,
    _database: TestDatabase,
}

impl TestIntake {
    pub async fn start(backend: Backend) -> Self {
        let database = TestDatabase::new(backend).await;
        let settings = custos_intake::IntakeSettings {
            receipt_secret: Some("test-receipt-secret-0123456789abcdef".into()),
            ..Default::default()
        };
        let app = App::build::<custos_intake::Intake>(custos_testing::config(&database, settings))
            .await
            .expect("intake starts");
        let running = Running::spawn(app.local_addr(), |signal| app.run_until(signal));
        Self {
            running,
            _database: database,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    pub fn client(&self, subject: &str, roles: &[Role]) -> IntakeClient {
        IntakeServiceClient::new(custos_testing::authed(self.running.addr, subject, roles))
    }

    pub fn anonymous(&self) -> IntakeClient {
        IntakeServiceClient::new(custos_testing::anonymous(self.running.addr))
    }
}

/// Polls `condition` every 20 ms until it holds, failing after 20 s.
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut condition: F) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        tick.tick().await;
        if condition().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
    }
}
