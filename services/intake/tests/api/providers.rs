//! Weaknesses reported to service providers: responses, verdicts, and the overdue list.

use custos_kit::{auth::Role, error::status_violations};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::*;

async fn overdue_provider_reports_are_listed(backend: Backend) {
    let intake = TestIntake::start_with(backend, |c| c.service.provider_response_days = 10).await;
    let mut it = intake.client("it-1", &[Role::ItSupport]);
    let mut alex = intake.client("alex", &[Role::Reporter]);
    let mut record = async |days_ago: i64, provider: &str| {
        let weakness = alex
            .submit_report(named(weakness_details(), pb::ReportKind::Weakness))
            .await
            .unwrap()
            .into_inner()
            .report
            .unwrap();
        it.record_provider_report(pb::RecordProviderReportRequest {
            report_id: weakness.id,
            provider: provider.into(),
            provider_reference: format!("{provider}-123"),
            reported_at: Some(hours_ago(24 * days_ago)),
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .provider_report
        .unwrap()
    };
    let silent = record(20, "Acme Housing Software").await;
    let _recent = record(2, "Recent Ltd").await;
    let answered = record(30, "Answered Ltd").await;
    let fixed = record(25, "Fixed Ltd").await;
    let older_silent = record(40, "Older Ltd").await;

    let mut it = intake.client("it-1", &[Role::ItSupport]);
    let answered = it
        .record_provider_response(pb::RecordProviderResponseRequest {
            provider_report_id: answered.id,
            responded_at: Some(hours_ago(24 * 28)),
            summary: "Patch scheduled for next release".into(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .provider_report
        .unwrap();
    assert_eq!(answered.responses.len(), 1);
    let fixed = it
        .record_fix_verdict(pb::RecordFixVerdictRequest {
            provider_report_id: fixed.id,
            verdict: pb::FixVerdict::Effective as i32,
            notes: "Retested: records no longer leak".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .provider_report
        .unwrap();
    assert_eq!(fixed.verdict, pb::FixVerdict::Effective as i32);
    assert_eq!(fixed.verdict_by, "it-1");

    let first = it
        .list_overdue_provider_reports(pb::ListOverdueProviderReportsRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.response_days, 10);
    assert_eq!(first.provider_reports.len(), 1);
    let second = it
        .list_overdue_provider_reports(pb::ListOverdueProviderReportsRequest {
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    let overdue: Vec<_> = first
        .provider_reports
        .iter()
        .chain(&second.provider_reports)
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(
        overdue,
        [older_silent.id, silent.id],
        "oldest first; answered, fixed and recent ones are not overdue"
    );
    assert!(
        second.next_page_token.is_empty(),
        "the second page is the last"
    );
}

async fn provider_tracking_rules(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let event = submit_event(&intake, "alex").await;
    let mut desk = intake.client("desk", &[Role::Helpdesk]);
    let err = desk
        .record_provider_report(pb::RecordProviderReportRequest {
            report_id: event.id.clone(),
            provider: "Acme".into(),
            provider_reference: String::new(),
            reported_at: Some(hours_ago(1)),
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "only weaknesses go to providers"
    );
    let err = desk
        .record_provider_report(pb::RecordProviderReportRequest::default())
        .await
        .unwrap_err();
    let mut fields: Vec<_> = status_violations(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    assert_eq!(fields, ["provider", "report_id", "reported_at"]);
    let err = desk
        .record_fix_verdict(pb::RecordFixVerdictRequest {
            provider_report_id: uuid::Uuid::now_v7().to_string(),
            verdict: pb::FixVerdict::Pending as i32,
            notes: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status_violations(&err)[0].field, "verdict");
    let err = desk
        .record_provider_response(pb::RecordProviderResponseRequest {
            provider_report_id: uuid::Uuid::now_v7().to_string(),
            responded_at: Some(hours_ago(1)),
            summary: "ok".into(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = intake
        .client("alex", &[Role::Reporter])
        .list_overdue_provider_reports(pb::ListOverdueProviderReportsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

on_both_backends!(overdue_provider_reports_are_listed, provider_tracking_rules);
