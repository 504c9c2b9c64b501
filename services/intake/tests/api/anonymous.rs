//! Anonymous reporting (policy section 11): no token needed, a one-time receipt, and no
//! trace of who reported.

use custos_kit::{auth::Role, with_conn};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use prost::Message;
use tonic::Code;

use crate::common::*;

async fn receipt_checks_status_and_adds_information(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let response = intake
        .anonymous()
        .submit_report(anonymous_event())
        .await
        .unwrap()
        .into_inner();
    let report = response.report.unwrap();
    assert!(report.anonymous);
    assert!(report.contact.is_none() && report.submitted_by.is_empty());
    assert!(
        response
            .guidance
            .iter()
            .any(|g| g.code == "KEEP_YOUR_RECEIPT")
    );
    let receipt = response.receipt;
    assert_eq!(receipt.replace('-', "").len(), 32, "160-bit receipt");

    let status = intake
        .anonymous()
        .check_receipt(pb::CheckReceiptRequest {
            receipt: receipt.to_lowercase(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.reference, report.reference);
    assert_eq!(status.status, pb::ReportStatus::Received as i32);

    intake
        .anonymous()
        .add_receipt_information(pb::AddReceiptInformationRequest {
            receipt: receipt.clone(),
            text: "It happened again this morning".into(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap();
    let status = intake
        .anonymous()
        .check_receipt(pb::CheckReceiptRequest {
            receipt: receipt.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.follow_ups.len(), 1);
    assert_eq!(
        status.follow_ups[0].source,
        pb::FollowUpSource::Receipt as i32
    );
    assert!(status.follow_ups[0].added_by.is_empty());

    // Staff see the follow-up on the report.
    let full = intake
        .client("desk", &[Role::Helpdesk])
        .get_report(pb::GetReportRequest {
            lookup: Some(pb::get_report_request::Lookup::ReportId(report.id)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.follow_ups.len(), 1);

    let wrong = "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA".to_owned();
    let err = intake
        .anonymous()
        .check_receipt(pb::CheckReceiptRequest { receipt: wrong })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = intake
        .anonymous()
        .check_receipt(pb::CheckReceiptRequest {
            receipt: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

async fn a_retry_returns_the_same_receipt(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut request = anonymous_event();
    request.idempotency_key = uuid::Uuid::new_v4().to_string();
    let first = intake
        .anonymous()
        .submit_report(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = intake
        .anonymous()
        .submit_report(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.report.unwrap().id, second.report.unwrap().id);
    assert_eq!(first.receipt, second.receipt);
}

/// What a portal or a gateway in front of intake would send along.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const USER_AGENT: &str = "ReporterBrowser/9.9 (identifying-agent)";
const FORWARDED_FOR: &str = "203.0.113.77";

/// Adds a caller's trace context, user agent and forwarded-for headers to every call.
#[derive(Clone)]
struct Revealing(custos_kit::client::ClientInterceptor);

impl tonic::service::Interceptor for Revealing {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = self.0.call(request)?;
        let headers = request.metadata_mut();
        let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
        headers.insert("traceparent", traceparent.parse().unwrap());
        headers.insert("user-agent", USER_AGENT.parse().unwrap());
        headers.insert("x-forwarded-for", FORWARDED_FOR.parse().unwrap());
        headers.insert("x-real-ip", FORWARDED_FOR.parse().unwrap());
        Ok(request)
    }
}

async fn nothing_identifying_is_stored_or_logged(backend: Backend) {
    capture_logs();
    let intake = TestIntake::start(backend).await;
    // Even with a token, an anonymous report keeps nothing of the sender.
    let subject = "subject-who-must-not-be-stored";
    let token = custos_testing::token(subject, &[Role::Reporter]);
    let interceptor = Revealing(custos_kit::client::ClientInterceptor::bearer(&token).unwrap());
    let mut client = pb::intake_service_client::IntakeServiceClient::with_interceptor(
        custos_testing::channel(intake.addr()),
        interceptor,
    );
    let response = client
        .submit_report(anonymous_event())
        .await
        .unwrap()
        .into_inner();
    client
        .add_receipt_information(pb::AddReceiptInformationRequest {
            receipt: response.receipt.clone(),
            text: "more detail".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap();
    let report = response.report.unwrap();
    let id = uuid::Uuid::parse_str(&report.id).unwrap();
    assert_eq!(
        id.get_version_num(),
        4,
        "a random id: a UUIDv7 carries the millisecond"
    );
    let submitted = report.submitted_at.unwrap();
    assert_eq!(
        (submitted.seconds % 60, submitted.nanos),
        (0, 0),
        "to the minute"
    );

    let identifying = [
        subject,
        TRACE_ID,
        USER_AGENT,
        "identifying-agent",
        FORWARDED_FOR,
        "127.0.0.1",
        "Alex Example",
        // The whole number: a fragment such as `01632` turns up in timings.
        "01632 960123",
    ];
    let logs = captured_logs();
    assert!(
        logs.contains("anonymous report received"),
        "the log capture works"
    );
    let server_lines: Vec<&str> = logs
        .lines()
        // The test client's own lines, and the listener's address, are not the server's.
        .filter(|l| !l.contains("hyper_util::client") && !l.contains("serving gRPC"))
        .filter(|l| !l.contains("h2::") && !l.contains("tower::buffer"))
        .collect();
    for value in identifying {
        let found: Vec<_> = server_lines.iter().filter(|l| l.contains(value)).collect();
        assert!(found.is_empty(), "`{value}` was logged: {found:?}");
    }
    assert!(
        !logs.contains(&report.reference),
        "an anonymous report's reference is not logged with a time"
    );

    let dump = dump_all_text(&intake).await;
    for value in identifying {
        assert!(!dump.contains(value), "`{value}` was stored");
    }
    assert!(
        !dump.contains(&response.receipt) && !dump.contains(&response.receipt.replace('-', "")),
        "the receipt was stored in clear"
    );
    let finer = times_finer_than_the_minute(&intake).await;
    assert!(finer.is_empty(), "times finer than the minute: {finer:?}");

    // The feed: no trace context, random event ids, times to the minute.
    let mut stream = crate::feed::subscribe(&intake, "").await;
    for _ in 0..2 {
        let event = crate::feed::next_event(&mut stream).await;
        assert!(event.trace_context.is_empty(), "{:?}", event.trace_context);
        let event_id = uuid::Uuid::parse_str(&event.event_id).unwrap();
        assert_eq!(event_id.get_version_num(), 4);
        let at = event.occurred_at.unwrap();
        assert_eq!((at.seconds % 60, at.nanos), (0, 0), "{}", event.event_type);
        let text = format!("{event:?}");
        for value in identifying {
            assert!(!text.contains(value), "`{value}` in the feed");
        }
        if event.event_type == "custos.intake.v1.ReportSubmitted" {
            let payload =
                pb::ReportSubmitted::decode(event.payload.unwrap().value.as_slice()).unwrap();
            let at = payload.submitted_at.unwrap();
            assert_eq!((at.seconds % 60, at.nanos), (0, 0));
        }
    }
}

/// Every stored time (a `timestamptz` column on PostgreSQL, a value in the stored time
/// format on SQLite) that is not on a whole minute, as `table.column = value`; the
/// migrations' own bookkeeping aside.
async fn times_finer_than_the_minute(intake: &TestIntake) -> Vec<String> {
    let mut conn = intake.db.read().await.unwrap();
    let mut finer = Vec::new();
    match intake.database.backend {
        Backend::Postgres => {
            let columns: Vec<(String, String)> = with_conn!(&mut conn, c => {
                sqlx::query_as(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() \
                     AND data_type = 'timestamp with time zone' AND table_name <> '_sqlx_migrations'",
                )
                .fetch_all(&mut *c)
                .await
                .unwrap()
            });
            assert!(columns.len() >= 8, "{columns:?}");
            for (table, column) in columns {
                let sql = format!(
                    "SELECT \"{column}\"::text FROM \"{table}\" \
                     WHERE date_trunc('minute', \"{column}\") <> \"{column}\""
                );
                let values: Vec<String> = with_conn!(&mut conn, c => {
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *c).await.unwrap()
                });
                finer.extend(
                    values
                        .into_iter()
                        .map(|v| format!("{table}.{column} = {v}")),
                );
            }
        }
        Backend::Sqlite => {
            // `2026-11-28T09:15:37.123456Z`: a whole minute ends `:00.000000Z`.
            let dump = dump_all_text(intake).await;
            for value in dump.lines() {
                let b = value.as_bytes();
                let is_time = b.len() == 27 && b[10] == b'T' && b[26] == b'Z' && b[19] == b'.';
                if is_time && &value[17..26] != "00.000000" {
                    finer.push(value.to_owned());
                }
            }
        }
    }
    finer
}

/// Every text and blob value of every table of intake's schema, concatenated.
async fn dump_all_text(intake: &TestIntake) -> String {
    let tables = custos_testing::table_names(&intake.db).await;
    assert!(tables.len() >= 10, "{tables:?}");
    custos_testing::dump_tables(&intake.db).await
}

/// An anonymous call never joins the caller's trace: the trace id it sent appears on no
/// span the service records (spans go to the tracing backend with their times). Calls
/// that may be anonymous never take a caller's parent, even with a token; any other
/// call does, which shows the check can see a join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_call_does_not_join_the_callers_trace() {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test"))),
    )
    .unwrap();
    let intake = TestIntake::start(Backend::Sqlite).await;
    let client = |token: Option<String>| {
        let inner = match token {
            Some(t) => custos_kit::client::ClientInterceptor::bearer(&t).unwrap(),
            None => custos_kit::client::ClientInterceptor::anonymous(),
        };
        pb::intake_service_client::IntakeServiceClient::with_interceptor(
            custos_testing::channel(intake.addr()),
            Revealing(inner),
        )
    };
    let traced = |exporter: &InMemorySpanExporter| {
        exporter
            .get_finished_spans()
            .unwrap()
            .iter()
            .filter(|s| s.span_context.trace_id().to_string() == TRACE_ID)
            .count()
    };
    client(None).submit_report(anonymous_event()).await.unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert!(
        spans.iter().any(|s| s.name == "rpc"),
        "the call was traced: {spans:?}"
    );
    assert_eq!(
        traced(&exporter),
        0,
        "the anonymous call joined the caller's trace"
    );

    let mut named_caller = client(Some(custos_testing::token("alex", &[Role::Reporter])));
    named_caller
        .submit_report(named(event_details(), pb::ReportKind::Event))
        .await
        .unwrap();
    assert_eq!(
        traced(&exporter),
        0,
        "SubmitReport never joins a caller's trace"
    );
    named_caller
        .list_reports(pb::ListReportsRequest::default())
        .await
        .unwrap();
    assert!(
        traced(&exporter) > 0,
        "an authenticated call joins the caller's trace"
    );
    // The events: the named submission's carries its (server-side) trace context, the
    // anonymous one's none at all.
    let mut stream = crate::feed::subscribe(&intake, "").await;
    let anonymous = crate::feed::next_event(&mut stream).await;
    let named = crate::feed::next_event(&mut stream).await;
    assert!(named.trace_context.contains_key("traceparent"), "{named:?}");
    assert!(anonymous.trace_context.is_empty(), "{anonymous:?}");
}

async fn without_the_setting_a_token_is_needed(backend: Backend) {
    let intake = TestIntake::start_with(backend, |c| c.service.anonymous_reporting = false).await;
    let err = intake
        .anonymous()
        .submit_report(anonymous_event())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // With a token, the report may still be anonymous.
    let ok = intake
        .client("alex", &[Role::Reporter])
        .submit_report(anonymous_event())
        .await
        .unwrap();
    assert!(ok.into_inner().report.unwrap().anonymous);
}

on_both_backends!(
    receipt_checks_status_and_adds_information,
    a_retry_returns_the_same_receipt,
    nothing_identifying_is_stored_or_logged,
    without_the_setting_a_token_is_needed,
);
