//! Anonymous reporting (policy section 11): no token needed, a one-time receipt, and no
//! trace of who reported.

use custos_kit::{auth::Role, with_conn};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use sqlx::Row;
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

async fn nothing_identifying_is_stored_or_logged(backend: Backend) {
    capture_logs();
    let intake = TestIntake::start(backend).await;
    // Even with a token, an anonymous report keeps nothing of the sender.
    let subject = "subject-who-must-not-be-stored";
    let mut client = intake.client(subject, &[Role::Reporter]);
    let response = client
        .submit_report(anonymous_event())
        .await
        .unwrap()
        .into_inner();
    client
        .add_receipt_information(pb::AddReceiptInformationRequest {
            receipt: response.receipt.clone(),
            text: "more detail".into(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap();

    let logs = captured_logs();
    assert!(logs.contains("report received"), "the log capture works");
    assert!(!logs.contains(subject), "the token subject was logged");
    assert!(
        !logs.contains("Alex Example"),
        "contact details were logged"
    );
    // The server's own log lines (not the test client's) never name a peer address; the
    // one line with an address is the listener's own.
    let peer_lines: Vec<&str> = logs
        .lines()
        .filter(|l| {
            l.contains("127.0.0.1:")
                && !l.contains("hyper_util::client")
                && !l.contains("serving gRPC")
        })
        .collect();
    assert!(
        peer_lines.is_empty(),
        "a peer address was logged: {peer_lines:?}"
    );

    let dump = dump_all_text(&intake).await;
    assert!(!dump.contains(subject), "the token subject was stored");
    assert!(
        !dump.contains(&response.receipt),
        "the receipt was stored in clear"
    );
    assert!(
        !dump.contains(&response.receipt.replace('-', "")),
        "the receipt was stored in clear"
    );
    assert!(
        !dump.contains("Alex Example") && !dump.contains("01632"),
        "contact details were stored"
    );
    assert!(!dump.contains("127.0.0.1"), "a peer address was stored");
}

/// Every text and blob value of every intake table, concatenated.
async fn dump_all_text(intake: &TestIntake) -> String {
    let tables = [
        "reports",
        "report_revisions",
        "follow_ups",
        "outbox",
        "audit_log",
    ];
    let mut out = String::new();
    for table in tables {
        let sql = format!("SELECT * FROM {table}");
        let mut conn = intake.db.read().await.unwrap();
        let values: Vec<String> = with_conn!(&mut conn, c => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *c).await.unwrap();
            rows.iter()
                .flat_map(|row| {
                    (0..row.len()).map(move |i| {
                        row.try_get::<String, _>(i)
                            .or_else(|_| row.try_get::<Vec<u8>, _>(i).map(|b| String::from_utf8_lossy(&b).into_owned()))
                            .unwrap_or_default()
                    })
                })
                .collect()
        });
        out.push_str(&values.join("\n"));
    }
    out
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
