//! Starting intake for a test, and sample requests.

use custos_intake::{Config, Intake, IntakeSettings};
use custos_kit::{auth::Role, client::ClientInterceptor, service::App, storage::Db};
use custos_proto::intake::v1::{self as pb, intake_service_client::IntakeServiceClient};
use custos_testing::{Backend, Running, TestDatabase};
use prost_types::Timestamp;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub type Client = IntakeServiceClient<InterceptedService<Channel, ClientInterceptor>>;

pub struct TestIntake {
    pub running: Running,
    pub db: Db,
    pub database: TestDatabase,
}

impl TestIntake {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let database = TestDatabase::new(backend).await;
        let mut config = config(&database);
        adjust(&mut config);
        Self::start_on(database, config).await
    }

    pub async fn start_on(database: TestDatabase, config: Config) -> Self {
        let app = App::build::<Intake>(config).await.expect("intake starts");
        let db = app.db().clone();
        let running = Running::spawn(app.local_addr(), |signal| app.run_until(signal));
        Self {
            running,
            db,
            database,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.addr
    }

    /// A client for `subject` holding `roles`.
    pub fn client(&self, subject: &str, roles: &[Role]) -> Client {
        IntakeServiceClient::new(custos_testing::authed(self.addr(), subject, roles))
    }

    /// A client that sends no token.
    pub fn anonymous(&self) -> Client {
        IntakeServiceClient::new(custos_testing::anonymous(self.addr()))
    }
}

/// The receipt secret of every test intake.
pub const RECEIPT_SECRET: &str = "test-receipt-secret-0123456789abcdef";

/// Intake's settings in tests.
pub fn settings() -> IntakeSettings {
    IntakeSettings {
        receipt_secret: Some(RECEIPT_SECRET.into()),
        ..IntakeSettings::default()
    }
}

/// A test intake's whole configuration on `database`.
pub fn config(database: &TestDatabase) -> Config {
    custos_testing::config(database, settings())
}

/// A fresh idempotency key.
pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn hours_ago(hours: i64) -> Timestamp {
    let at = time::OffsetDateTime::now_utc() - time::Duration::hours(hours);
    custos_kit::time_fmt::to_timestamp(at)
}

pub fn event_details() -> pb::ReportDetails {
    pb::ReportDetails {
        category: "equipment_theft_or_loss".into(),
        medium: pb::ReportMedium::Electronic as i32,
        data_involved: "Laptop with case files".into(),
        risk_to_others: pb::RiskToOthers::Yes as i32,
        risk_details: "Case files of about 40 residents".into(),
        incident_location: "Council offices, 2nd floor".into(),
        inventory_numbers: vec!["LT-00421".into()],
        occurred_at: Some(hours_ago(2)),
        affected_location: "Desk 14".into(),
        circumstances: "Laptop missing after lunch".into(),
        symptoms: String::new(),
        personal_information: false,
        malware_suspected: false,
    }
}

pub fn weakness_details() -> pb::ReportDetails {
    pb::ReportDetails {
        category: "application_malfunction".into(),
        medium: pb::ReportMedium::Electronic as i32,
        data_involved: "Housing benefits application".into(),
        risk_to_others: 0,
        incident_location: String::new(),
        inventory_numbers: vec![],
        occurred_at: None,
        circumstances: "Search shows other applicants' records".into(),
        ..event_details()
    }
}

pub fn contact() -> pb::ReporterContact {
    pb::ReporterContact {
        name: "Alex Example".into(),
        phone: "01632 960123".into(),
        email: "alex@example.org".into(),
    }
}

pub fn named(details: pb::ReportDetails, kind: pb::ReportKind) -> pb::SubmitReportRequest {
    pb::SubmitReportRequest {
        kind: kind as i32,
        details: Some(details),
        reporter: Some(pb::submit_report_request::Reporter::Contact(contact())),
        idempotency_key: key(),
    }
}

pub fn anonymous_event() -> pb::SubmitReportRequest {
    pb::SubmitReportRequest {
        reporter: Some(pb::submit_report_request::Reporter::Anonymous(
            pb::Anonymous {},
        )),
        ..named(event_details(), pb::ReportKind::Event)
    }
}

/// Every report, as helpdesk sees them.
pub async fn list_all(intake: &TestIntake) -> Vec<pb::Report> {
    intake
        .client("desk", &[Role::Helpdesk])
        .list_reports(pb::ListReportsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .reports
}

/// Submits a named event as `subject` (a reporter) and returns the report.
pub async fn submit_event(intake: &TestIntake, subject: &str) -> pb::Report {
    intake
        .client(subject, &[Role::Reporter])
        .submit_report(named(event_details(), pb::ReportKind::Event))
        .await
        .expect("submit")
        .into_inner()
        .report
        .expect("report")
}

static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log line of this test process, at DEBUG and above, to a buffer.
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}
