//! SubmitReport: every kind and medium, idempotency under concurrency, and bad input.

use std::collections::HashSet;

use custos_kit::{auth::Role, error::status_violations};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::*;

async fn every_kind_and_medium_is_accepted_with_guidance(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut client = intake.client("alex", &[Role::Reporter]);
    let mut references = HashSet::new();
    for (kind, details) in [
        (pb::ReportKind::Event, event_details()),
        (pb::ReportKind::Weakness, weakness_details()),
    ] {
        for medium in [pb::ReportMedium::Electronic, pb::ReportMedium::Paper] {
            let mut details = details.clone();
            details.medium = medium as i32;
            let response = client
                .submit_report(named(details, kind))
                .await
                .unwrap()
                .into_inner();
            let report = response.report.unwrap();
            assert_eq!(report.kind, kind as i32);
            assert_eq!(report.status, pb::ReportStatus::Received as i32);
            assert_eq!(report.details.unwrap().medium, medium as i32);
            assert_eq!(report.submitted_by, "alex");
            assert_eq!(report.contact.unwrap(), contact());
            assert!(
                report
                    .reference
                    .starts_with(&format!("SIR-{}-", time::OffsetDateTime::now_utc().year()))
            );
            assert!(
                references.insert(report.reference.clone()),
                "references are unique"
            );
            assert!(response.receipt.is_empty(), "named reports get no receipt");
            let codes: Vec<_> = response.guidance.iter().map(|g| g.code.as_str()).collect();
            assert_eq!(
                report.requires_senior_management_notice,
                medium == pb::ReportMedium::Paper,
                "paper reports are flagged for senior management"
            );
            assert_eq!(
                codes.contains(&"SENIOR_MANAGEMENT_NOTIFIED"),
                medium == pb::ReportMedium::Paper
            );
            assert_eq!(
                codes.contains(&"WEAKNESS_DO_NOT_PROVE"),
                kind == pb::ReportKind::Weakness
            );
        }
    }
}

async fn malware_guidance_and_personal_information_flag(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut client = intake.client("it-1", &[Role::ItSupport]);
    let mut details = event_details();
    details.category = "malware_infection".into();
    details.symptoms = "Pop-up: 'Your files are encrypted'".into();
    details.personal_information = true;
    let response = client
        .submit_report(named(details, pb::ReportKind::Event))
        .await
        .unwrap()
        .into_inner();
    let malware = response
        .guidance
        .iter()
        .find(|g| g.code == "MALWARE_SUSPECTED")
        .expect("malware guidance");
    assert!(
        malware
            .steps
            .iter()
            .any(|s| s.contains("Disconnect the workstation"))
    );
    assert!(malware.steps.iter().any(|s| s.contains("removable media")));
    assert!(response.report.unwrap().requires_senior_management_notice);
}

async fn ten_concurrent_submissions_with_one_key_create_one_report(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut request = named(event_details(), pb::ReportKind::Event);
    request.idempotency_key = uuid::Uuid::new_v4().to_string();
    let calls = (0..10).map(|_| {
        let mut client = intake.client("alex", &[Role::Reporter]);
        let request = request.clone();
        tokio::spawn(async move { client.submit_report(request).await })
    });
    let mut ids = HashSet::new();
    for call in calls {
        let report = call
            .await
            .unwrap()
            .expect("every retry succeeds")
            .into_inner()
            .report
            .unwrap();
        ids.insert(report.id);
    }
    assert_eq!(ids.len(), 1, "one report for one key");
    let listed = list_all(&intake).await;
    assert_eq!(listed.len(), 1);

    // The same key for a different report is refused, and nothing is written.
    let mut other = request.clone();
    other.details.as_mut().unwrap().circumstances = "something else".into();
    let status = intake
        .client("alex", &[Role::Reporter])
        .submit_report(other)
        .await
        .unwrap_err();
    // INVALID_ARGUMENT, not ALREADY_EXISTS: retrying clients read the latter as success.
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        custos_kit::error::status_reason(&status),
        Some(("IDEMPOTENCY_KEY_REUSED".into(), "intake.custos".into()))
    );
    assert_eq!(status_violations(&status)[0].field, "idempotency_key");
    // Another person's identical key is theirs alone.
    let theirs = intake
        .client("sam", &[Role::Reporter])
        .submit_report(request)
        .await
        .unwrap();
    assert!(!ids.contains(&theirs.into_inner().report.unwrap().id));
}

async fn bad_input_names_every_bad_field(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut client = intake.client("alex", &[Role::Reporter]);
    let future = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    let cases: Vec<(&str, pb::SubmitReportRequest, Vec<&str>)> = vec![
        (
            "empty request",
            pb::SubmitReportRequest::default(),
            vec!["kind", "details", "reporter", "idempotency_key"],
        ),
        (
            "unknown enum values",
            pb::SubmitReportRequest {
                kind: 42,
                details: Some(pb::ReportDetails {
                    medium: 9,
                    risk_to_others: 7,
                    ..event_details()
                }),
                ..named(event_details(), pb::ReportKind::Event)
            },
            vec!["kind", "details.medium", "details.risk_to_others"],
        ),
        (
            "event without its required fields",
            named(
                pb::ReportDetails {
                    category: String::new(),
                    data_involved: " ".into(),
                    risk_to_others: 0,
                    incident_location: String::new(),
                    occurred_at: None,
                    circumstances: String::new(),
                    ..event_details()
                },
                pb::ReportKind::Event,
            ),
            vec![
                "details.category",
                "details.data_involved",
                "details.risk_to_others",
                "details.incident_location",
                "details.occurred_at",
                "details.circumstances",
            ],
        ),
        (
            "formats, lengths and the future",
            pb::SubmitReportRequest {
                reporter: Some(pb::submit_report_request::Reporter::Contact(
                    pb::ReporterContact {
                        name: "x".repeat(201),
                        phone: "call me".into(),
                        email: "not-an-email".into(),
                    },
                )),
                idempotency_key: "short".into(),
                ..named(
                    pb::ReportDetails {
                        occurred_at: Some(custos_kit::time_fmt::to_timestamp(future)),
                        category: "no_such_category".into(),
                        inventory_numbers: vec![String::new()],
                        ..event_details()
                    },
                    pb::ReportKind::Event,
                )
            },
            vec![
                "details.category",
                "details.inventory_numbers[0]",
                "details.occurred_at",
                "contact.name",
                "contact.phone",
                "contact.email",
                "idempotency_key",
            ],
        ),
        (
            "an anonymous report's key that is not a UUID",
            pb::SubmitReportRequest {
                idempotency_key: "aaaaaaaaaaaaaaaa".into(),
                ..anonymous_event()
            },
            vec!["idempotency_key"],
        ),
        (
            "category of the wrong kind",
            named(
                pb::ReportDetails {
                    category: "human_error".into(),
                    ..event_details()
                },
                pb::ReportKind::Event,
            ),
            vec!["details.category"],
        ),
    ];
    for (case, request, expected) in cases {
        let status = client.submit_report(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        let mut fields: Vec<String> = status_violations(&status)
            .into_iter()
            .map(|v| v.field)
            .collect();
        fields.sort();
        let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
        expected.sort();
        assert_eq!(fields, expected, "{case}");
    }
    let listed = list_all(&intake).await;
    assert!(listed.is_empty(), "nothing half-written");
}

on_both_backends!(
    every_kind_and_medium_is_accepted_with_guidance,
    malware_guidance_and_personal_information_flag,
    ten_concurrent_submissions_with_one_key_create_one_report,
    bad_input_names_every_bad_field,
);
