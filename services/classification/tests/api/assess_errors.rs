//! AssessReport's refusals: every bad field named at once, a missing report or incident,
//! and the roles that may assess and read assessments.

use custos_kit::{
    auth::Role,
    error::{status_reason, status_violations},
};
use custos_proto::classification::v1::{self as pb, assess_report_request::Decision};
use custos_testing::{Backend, on_both_backends};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    assess::{advisor, assessments, choices, queued, request},
    common::*,
};

async fn bad_requests_name_what_is_wrong(backend: Backend) {
    let (intake_svc, c) = start_linked(backend).await;
    let entry = queued(&intake_svc, &c, "equipment_theft_or_loss").await;
    let mut client = advisor(&c);

    // Nothing at all: every required field named.
    let err = client
        .assess_report(pb::AssessReportRequest {
            choices: choices("minor", None),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields: Vec<String> = status_violations(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "category",
            "decision",
            "idempotency_key",
            "report_id",
            "report_revision"
        ]
    );

    // Fields of each decision, a category not in the taxonomy, a bad choice.
    let cases: Vec<(pb::AssessReportRequest, &str)> = vec![
        (
            request(
                &entry,
                0,
                Decision::Dismiss(pb::DismissDecision {
                    reason: "  ".into(),
                }),
            ),
            "dismiss.reason",
        ),
        (
            request(
                &entry,
                0,
                Decision::RaiseIncident(pb::RaiseIncidentDecision {
                    title: String::new(),
                    summary: String::new(),
                }),
            ),
            "raise_incident.title",
        ),
        (
            request(
                &entry,
                0,
                Decision::LinkIncident(pb::LinkIncidentDecision {
                    incident_id: "not an incident, clearly too long to be a reference".into(),
                }),
            ),
            "link_incident.incident_id",
        ),
        (
            pb::AssessReportRequest {
                category: "not_a_category".into(),
                ..request(&entry, 0, Decision::Monitor(pb::MonitorDecision {}))
            },
            "category",
        ),
        (
            pb::AssessReportRequest {
                previous_sequence: -1,
                ..request(&entry, 0, Decision::Monitor(pb::MonitorDecision {}))
            },
            "previous_sequence",
        ),
        (
            pb::AssessReportRequest {
                note: "bell\u{7}".into(),
                ..request(&entry, 0, Decision::Monitor(pb::MonitorDecision {}))
            },
            "note",
        ),
        (
            pb::AssessReportRequest {
                choices: vec![pb::ImpactChoice {
                    dimension: "financial".into(),
                    row: "catastrophic".into(),
                }],
                ..request(&entry, 0, Decision::Monitor(pb::MonitorDecision {}))
            },
            "choices[0].row",
        ),
    ];
    for (r, field) in cases {
        let err = client.assess_report(r).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        let fields: Vec<String> = status_violations(&err)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, [field], "{err:?}");
    }

    // A dimension left unscored.
    let err = client
        .assess_report(pb::AssessReportRequest {
            choices: choices("minor", None)[..6].to_vec(),
            ..request(&entry, 0, Decision::Monitor(pb::MonitorDecision {}))
        })
        .await
        .unwrap_err();
    assert_eq!(status_reason(&err).unwrap().0, "IMPACT_UNSCORED");
    assert_eq!(
        err.get_details_error_info().unwrap().metadata["dimensions"],
        "personal_privacy"
    );

    // A category of weaknesses for an event.
    let err = client
        .assess_report(pb::AssessReportRequest {
            category: "human_error".into(),
            ..request(&entry, 0, Decision::Monitor(pb::MonitorDecision {}))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let v = status_violations(&err);
    assert_eq!(v[0].field, "category");
    assert!(
        v[0].description.contains("does not apply"),
        "{}",
        v[0].description
    );

    // No such report, no such incident.
    let err = client
        .assess_report(pb::AssessReportRequest {
            report_id: uuid::Uuid::now_v7().to_string(),
            ..request(&entry, 0, Decision::Monitor(pb::MonitorDecision {}))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(status_reason(&err).unwrap().0, "REPORT_NOT_FOUND");
    for missing in [uuid::Uuid::now_v7().to_string(), "INC-2026-999999".into()] {
        let err = client
            .assess_report(request(
                &entry,
                0,
                Decision::LinkIncident(pb::LinkIncidentDecision {
                    incident_id: missing,
                }),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(status_reason(&err).unwrap().0, "INCIDENT_NOT_FOUND");
    }
    let err = client
        .list_assessments(pb::ListAssessmentsRequest {
            report_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status_reason(&err).unwrap().0, "REPORT_NOT_FOUND");
    // Nothing was recorded by any of it.
    assert!(assessments(&c, &entry.report_id).await.is_empty());
    assert_eq!(queue(&c, pb::TriageEntryFilter::default()).await.len(), 1);
}

async fn only_advisors_assess(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let r = pb::AssessReportRequest {
        report_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let err = c.anonymous().assess_report(r.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    for role in [
        Role::Reporter,
        Role::Helpdesk,
        Role::IncidentOfficer,
        Role::Service,
        Role::Admin,
    ] {
        let err = c
            .client("x", &[role])
            .assess_report(r.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{role:?}");
    }
    let list = pb::ListAssessmentsRequest {
        report_id: r.report_id.clone(),
        ..Default::default()
    };
    for role in [Role::Reporter, Role::Helpdesk] {
        let err = c
            .client("x", &[role])
            .list_assessments(list.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{role:?}");
    }
    // Roles that may: past the check (the report does not exist).
    for role in [Role::SecurityAdvisor, Role::Service] {
        let err = c
            .client("x", &[role])
            .list_assessments(list.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{role:?}");
    }
}

on_both_backends!(bad_requests_name_what_is_wrong, only_advisors_assess);
