//! Starting classification for a test.

use custos_classification::{Classification, ClassificationSettings, Config};
use custos_kit::{auth::Role, client::ClientInterceptor, service::App};
use custos_proto::classification::v1::classification_service_client::ClassificationServiceClient;
use custos_testing::{Backend, Running, TestDatabase};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub type Client = ClassificationServiceClient<InterceptedService<Channel, ClientInterceptor>>;

pub struct TestClassification {
    pub running: Running,
    /// Kept so that the database outlives the service.
    _database: TestDatabase,
}

impl TestClassification {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, ClassificationSettings::default()).await
    }

    pub async fn start_with(backend: Backend, settings: ClassificationSettings) -> Self {
        let database = TestDatabase::new(backend).await;
        let config: Config = custos_testing::config(&database, settings);
        let app = App::build::<Classification>(config)
            .await
            .expect("classification starts");
        let running = Running::spawn(app.local_addr(), |signal| app.run_until(signal));
        Self {
            running,
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
