//! Starting classification (and, for the triage tests, a real intake whose feed it
//! follows) for a test.

use std::time::Duration;

use custos_classification::{Classification, ClassificationSettings, Config};
use custos_kit::{auth::Role, client::ClientInterceptor, service::App, storage::Db};
use custos_proto::{
    classification::v1::{
        self as pb, classification_service_client::ClassificationServiceClient,
        incident_service_client::IncidentServiceClient,
    },
    intake::v1::{self as intake, intake_service_client::IntakeServiceClient},
};
use custos_testing::{Backend, Running, TestDatabase};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub type Client = ClassificationServiceClient<InterceptedService<Channel, ClientInterceptor>>;
pub type Continuity =
    custos_proto::continuity::v1::continuity_service_client::ContinuityServiceClient<
        InterceptedService<Channel, ClientInterceptor>,
    >;
pub type Incidents = IncidentServiceClient<InterceptedService<Channel, ClientInterceptor>>;
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
        Self::build(backend, settings, adjust, None).await
    }

    async fn build(
        backend: Backend,
        settings: ClassificationSettings,
        adjust: impl FnOnce(&mut Config),
        listener: Option<std::net::TcpListener>,
    ) -> Self {
        let database = TestDatabase::new(backend).await;
        let mut config: Config = custos_testing::config(&database, settings);
        adjust(&mut config);
        let app = match listener {
            Some(l) => App::build_on::<Classification>(config, l).await,
            None => App::build::<Classification>(config).await,
        }
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

    /// A client of the incident register for `subject` holding `roles`.
    pub fn incidents(&self, subject: &str, roles: &[Role]) -> Incidents {
        IncidentServiceClient::new(custos_testing::authed(self.running.addr, subject, roles))
    }

    /// A client of the public continuity feed for `subject` holding `roles`.
    pub fn continuity(&self, subject: &str, roles: &[Role]) -> Continuity {
        Continuity::new(custos_testing::authed(self.running.addr, subject, roles))
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
        Self::build(backend, None, None).await
    }

    async fn build(
        backend: Backend,
        classification_url: Option<String>,
        listener: Option<std::net::TcpListener>,
    ) -> Self {
        let database = TestDatabase::new(backend).await;
        let settings = custos_intake::IntakeSettings {
            receipt_secret: Some("test-receipt-secret-0123456789abcdef".into()),
            classification_url,
            ..Default::default()
        };
        let config = custos_testing::config(&database, settings);
        let app = match listener {
            Some(l) => App::build_on::<custos_intake::Intake>(config, l).await,
            None => App::build::<custos_intake::Intake>(config).await,
        }
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

/// Intake and classification, each following the other's feed (as `custos serve` runs
/// them): reports reach the triage queue, and assessments reach the reports' statuses.
pub async fn start_linked(backend: Backend) -> (TestIntake, TestClassification) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let (intake_listener, classification_listener) = (bind(), bind());
    let url = |l: &std::net::TcpListener| format!("http://{}", l.local_addr().unwrap());
    let (intake_url, classification_url) = (url(&intake_listener), url(&classification_listener));
    let intake_svc =
        TestIntake::build(backend, Some(classification_url), Some(intake_listener)).await;
    let c = TestClassification::build(
        backend,
        settings(&intake_url),
        |_| {},
        Some(classification_listener),
    )
    .await;
    (intake_svc, c)
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

/// Reports for the tests: submitting them to a real intake, and reading the queue.
pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn details(
    category: &str,
    medium: intake::ReportMedium,
    personal: bool,
) -> intake::ReportDetails {
    intake::ReportDetails {
        category: category.into(),
        medium: medium as i32,
        data_involved: "Case files of residents".into(),
        risk_to_others: intake::RiskToOthers::Yes as i32,
        risk_details: "About 40 residents".into(),
        incident_location: "Council offices, 2nd floor".into(),
        inventory_numbers: vec!["LT-00421".into()],
        occurred_at: Some(custos_kit::time_fmt::to_timestamp(
            time::OffsetDateTime::now_utc() - time::Duration::hours(2),
        )),
        affected_location: "Desk 14".into(),
        circumstances: "Missing after lunch; Alex Example noticed".into(),
        symptoms: String::new(),
        personal_information: personal,
        malware_suspected: false,
    }
}

pub fn contact() -> intake::ReporterContact {
    intake::ReporterContact {
        name: "Alex Example".into(),
        phone: "01632 960123".into(),
        email: "alex@example.org".into(),
    }
}

pub async fn submit(
    intake_svc: &TestIntake,
    kind: intake::ReportKind,
    details: intake::ReportDetails,
    anonymous: bool,
) -> intake::Report {
    submit_with_receipt(intake_svc, kind, details, anonymous)
        .await
        .0
}

/// Submits a report; the receipt is empty unless it is anonymous.
pub async fn submit_with_receipt(
    intake_svc: &TestIntake,
    kind: intake::ReportKind,
    details: intake::ReportDetails,
    anonymous: bool,
) -> (intake::Report, String) {
    use intake::submit_report_request::Reporter;
    let request = intake::SubmitReportRequest {
        kind: kind as i32,
        details: Some(details),
        reporter: Some(if anonymous {
            Reporter::Anonymous(intake::Anonymous {})
        } else {
            Reporter::Contact(contact())
        }),
        idempotency_key: key(),
    };
    let mut client = if anonymous {
        intake_svc.anonymous()
    } else {
        intake_svc.client("alex", &[Role::Reporter])
    };
    let response = client
        .submit_report(request)
        .await
        .expect("submit")
        .into_inner();
    (response.report.unwrap(), response.receipt)
}

pub async fn queue(c: &TestClassification, filter: pb::TriageEntryFilter) -> Vec<pb::TriageEntry> {
    c.client("sam", &[Role::SecurityAdvisor])
        .list_triage_queue(pb::ListTriageQueueRequest {
            filter: Some(filter),
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .expect("list the queue")
        .into_inner()
        .entries
}

pub async fn queue_len(c: &TestClassification) -> usize {
    queue(c, pb::TriageEntryFilter::default()).await.len()
}

/// The dimensions of the policy's matrix, in its order.
pub const DIMENSIONS: [&str; 7] = [
    "reputational_media",
    "reputational_government",
    "contractual",
    "legal",
    "financial",
    "disruption",
    "personal_privacy",
];
