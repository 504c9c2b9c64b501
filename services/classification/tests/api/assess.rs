//! AssessReport and ListAssessments end to end: a report submitted to a real intake is
//! assessed, reassessed, raised as an incident and linked to one; intake's report status
//! follows through classification's feed; stale views are refused; a retry records once;
//! and every bad field, missing report or incident, and role is answered as documented.

use custos_kit::{
    auth::Role,
    error::{status_reason, status_violations},
};
use custos_proto::{
    classification::v1::{self as pb, assess_report_request::Decision},
    intake::v1 as intake,
};
use custos_testing::{Backend, on_both_backends};
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::*;

/// Every dimension chosen on `row`, but `high_on` chosen on `major`.
pub(crate) fn choices(row: &str, high_on: Option<&str>) -> Vec<pb::ImpactChoice> {
    DIMENSIONS
        .iter()
        .map(|d| pb::ImpactChoice {
            dimension: (*d).into(),
            row: if Some(*d) == high_on { "major" } else { row }.into(),
        })
        .collect()
}

pub(crate) fn request(
    entry: &pb::TriageEntry,
    previous: i32,
    decision: Decision,
) -> pb::AssessReportRequest {
    pb::AssessReportRequest {
        report_id: entry.report_id.clone(),
        report_revision: entry.report_revision,
        previous_sequence: previous,
        category: entry.category.clone(),
        figures: None,
        choices: choices("minor", None),
        decision: Some(decision),
        note: String::new(),
        idempotency_key: key(),
    }
}

pub(crate) fn advisor(c: &TestClassification) -> Client {
    c.client("sam", &[Role::SecurityAdvisor])
}

async fn assess(c: &TestClassification, r: pb::AssessReportRequest) -> pb::Assessment {
    advisor(c)
        .assess_report(r)
        .await
        .expect("assess")
        .into_inner()
        .assessment
        .unwrap()
}

pub(crate) async fn assessments(c: &TestClassification, report_id: &str) -> Vec<pb::Assessment> {
    advisor(c)
        .list_assessments(pb::ListAssessmentsRequest {
            report_id: report_id.into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("list assessments")
        .into_inner()
        .assessments
}

async fn status_in_intake(intake_svc: &TestIntake, report_id: &str) -> i32 {
    intake_svc
        .client("sam", &[Role::SecurityAdvisor])
        .get_report(intake::GetReportRequest {
            lookup: Some(intake::get_report_request::Lookup::ReportId(
                report_id.into(),
            )),
        })
        .await
        .expect("get report")
        .into_inner()
        .report
        .unwrap()
        .status
}

async fn wait_for_status(intake_svc: &TestIntake, report_id: &str, want: intake::ReportStatus) {
    eventually(&format!("intake shows {want:?}"), async || {
        status_in_intake(intake_svc, report_id).await == want as i32
    })
    .await;
}

/// A report submitted to intake and queued in classification.
pub(crate) async fn queued(
    intake_svc: &TestIntake,
    c: &TestClassification,
    category: &str,
) -> pb::TriageEntry {
    let report = submit(
        intake_svc,
        intake::ReportKind::Event,
        details(category, intake::ReportMedium::Electronic, false),
        false,
    )
    .await;
    let mut found = None;
    eventually("the report is queued", async || {
        found = queue(c, pb::TriageEntryFilter::default())
            .await
            .into_iter()
            .find(|e| e.report_id == report.id);
        found.is_some()
    })
    .await;
    found.unwrap()
}

async fn assessments_move_the_report_and_are_all_kept(backend: Backend) {
    let (intake_svc, c) = start_linked(backend).await;
    let entry = queued(&intake_svc, &c, "equipment_theft_or_loss").await;
    assert_eq!(
        status_in_intake(&intake_svc, &entry.report_id).await,
        intake::ReportStatus::Received as i32
    );

    // Monitor: under assessment, and out of the queue.
    let first = assess(
        &c,
        pb::AssessReportRequest {
            note: "watch for more laptops going missing".into(),
            ..request(&entry, 0, Decision::Monitor(pb::MonitorDecision {}))
        },
    )
    .await;
    assert_eq!(first.sequence, 1);
    assert_eq!(first.decision, pb::AssessmentDecision::Monitor as i32);
    assert_eq!(first.assessed_by, "sam");
    assert_eq!(first.report_reference, entry.reference);
    assert_eq!(first.note, "watch for more laptops going missing");
    let impact = first.impact.as_ref().unwrap();
    assert_eq!(impact.overall_level, pb::ImpactLevel::Low as i32);
    assert_eq!(impact.dimensions.len(), 7);
    assert!(!impact.matrix_revision.is_empty());
    wait_for_status(
        &intake_svc,
        &entry.report_id,
        intake::ReportStatus::UnderAssessment,
    )
    .await;
    assert!(
        queue(&c, pb::TriageEntryFilter::default()).await.is_empty(),
        "an assessed report leaves the queue"
    );
    let in_state = async |state: pb::TriageState| -> Vec<(String, i32, i32)> {
        queue(
            &c,
            pb::TriageEntryFilter {
                state: state as i32,
                ..Default::default()
            },
        )
        .await
        .into_iter()
        .map(|e| (e.report_id, e.state, e.assessment_sequence))
        .collect()
    };
    assert_eq!(
        in_state(pb::TriageState::Monitored).await,
        [(
            entry.report_id.clone(),
            pb::TriageState::Monitored as i32,
            1
        )],
        "monitored reports are listed by state"
    );

    // Dismiss: closed.
    let second = assess(
        &c,
        request(
            &entry,
            1,
            Decision::Dismiss(pb::DismissDecision {
                reason: "found in the stationery cupboard".into(),
            }),
        ),
    )
    .await;
    assert_eq!(
        (second.sequence, second.reason.as_str()),
        (2, "found in the stationery cupboard")
    );
    wait_for_status(&intake_svc, &entry.report_id, intake::ReportStatus::Closed).await;
    assert!(in_state(pb::TriageState::Monitored).await.is_empty());
    assert_eq!(in_state(pb::TriageState::Dismissed).await.len(), 1);

    // The reporter adds something: the dismissed report is under assessment again in
    // intake, and back in the queue.
    intake_svc
        .client("alex", &[Role::Reporter])
        .add_follow_up(intake::AddFollowUpRequest {
            report_id: entry.report_id.clone(),
            text: "It was not in the cupboard after all".into(),
            idempotency_key: key(),
        })
        .await
        .expect("follow up");
    wait_for_status(
        &intake_svc,
        &entry.report_id,
        intake::ReportStatus::UnderAssessment,
    )
    .await;
    eventually("the report is back in the queue", async || {
        queue(&c, pb::TriageEntryFilter::default())
            .await
            .iter()
            .any(|e| e.report_id == entry.report_id)
    })
    .await;

    // Raise: a new incident, escalated; the highest dimension sets the level.
    let third = assess(
        &c,
        pb::AssessReportRequest {
            category: "loss_or_theft_of_data".into(),
            choices: choices("minor", Some("personal_privacy")),
            ..request(
                &entry,
                2,
                Decision::RaiseIncident(pb::RaiseIncidentDecision {
                    title: "Laptop with case files stolen".into(),
                    summary: "Taken from the 2nd floor".into(),
                }),
            )
        },
    )
    .await;
    let year = time::OffsetDateTime::from_unix_timestamp(third.assessed_at.unwrap().seconds)
        .unwrap()
        .year();
    assert_eq!(third.incident_reference, format!("INC-{year}-000001"));
    assert_eq!(third.category, "loss_or_theft_of_data");
    assert_eq!(
        third.impact.as_ref().unwrap().overall_level,
        pb::ImpactLevel::High as i32
    );
    wait_for_status(
        &intake_svc,
        &entry.report_id,
        intake::ReportStatus::EscalatedToIncident,
    )
    .await;

    // Another report linked to that incident by its reference, then by its id.
    let other = queued(&intake_svc, &c, "equipment_theft_or_loss").await;
    let linked = assess(
        &c,
        request(
            &other,
            0,
            Decision::LinkIncident(pb::LinkIncidentDecision {
                incident_id: third.incident_reference.clone(),
            }),
        ),
    )
    .await;
    assert_eq!(
        (
            linked.incident_id.as_str(),
            linked.incident_reference.as_str()
        ),
        (
            third.incident_id.as_str(),
            third.incident_reference.as_str()
        )
    );
    let relinked = assess(
        &c,
        request(
            &other,
            1,
            Decision::LinkIncident(pb::LinkIncidentDecision {
                incident_id: third.incident_id.clone(),
            }),
        ),
    )
    .await;
    assert_eq!(relinked.incident_reference, third.incident_reference);
    wait_for_status(
        &intake_svc,
        &other.report_id,
        intake::ReportStatus::EscalatedToIncident,
    )
    .await;

    // The history, newest first, every assessment as it was made.
    let history = assessments(&c, &entry.report_id).await;
    let summary: Vec<(i32, i32)> = history.iter().map(|a| (a.sequence, a.decision)).collect();
    assert_eq!(
        summary,
        [
            (3, pb::AssessmentDecision::RaiseIncident as i32),
            (2, pb::AssessmentDecision::Dismiss as i32),
            (1, pb::AssessmentDecision::Monitor as i32),
        ]
    );
    assert_eq!(history[2], first);
    assert_eq!(history[1], second);
    assert_eq!(history[0], third);

    // Paged, one at a time.
    let mut client = advisor(&c);
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = client
            .list_assessments(pb::ListAssessmentsRequest {
                report_id: entry.report_id.clone(),
                page_size: 1,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.assessments.iter().map(|a| a.sequence));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, [3, 2, 1]);
    // A token is bound to its report.
    let first_page = client
        .list_assessments(pb::ListAssessmentsRequest {
            report_id: entry.report_id.clone(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_assessments(pb::ListAssessmentsRequest {
            report_id: other.report_id.clone(),
            page_size: 1,
            page_token: first_page.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(status_violations(&err)[0].field, "page_token");
}

async fn stale_views_and_retries(backend: Backend) {
    let (intake_svc, c) = start_linked(backend).await;
    let entry = queued(&intake_svc, &c, "equipment_theft_or_loss").await;
    let monitor = || Decision::Monitor(pb::MonitorDecision {});

    // A retry with the same key records once and answers the same.
    let first = request(&entry, 0, monitor());
    let a = assess(&c, first.clone()).await;
    let again = assess(&c, first.clone()).await;
    assert_eq!(a, again);
    assert_eq!(assessments(&c, &entry.report_id).await.len(), 1);
    // The same key with another request.
    let err = advisor(&c)
        .assess_report(pb::AssessReportRequest {
            note: "something else".into(),
            ..first.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(status_reason(&err).unwrap().0, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(status_violations(&err)[0].field, "idempotency_key");

    // Someone assessed it since (another advisor on the same view): ABORTED, not a
    // second first assessment.
    let err = advisor(&c)
        .assess_report(request(&entry, 0, monitor()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(status_reason(&err).unwrap().0, "REPORT_REASSESSED");
    assert_eq!(
        err.get_details_error_info().unwrap().metadata["latest_sequence"],
        "1"
    );
    assert_eq!(assessments(&c, &entry.report_id).await.len(), 1);

    // Two advisors at once on the same view: exactly one succeeds.
    let (mut sam, mut kim) = (advisor(&c), c.client("kim", &[Role::SecurityAdvisor]));
    let (x, y) = tokio::join!(
        sam.assess_report(request(&entry, 1, monitor())),
        kim.assess_report(request(&entry, 1, monitor())),
    );
    let outcomes = [x.is_ok(), y.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{x:?} {y:?}");
    let failed = x.err().or(y.err()).unwrap();
    assert_eq!(failed.code(), Code::Aborted);
    assert_eq!(assessments(&c, &entry.report_id).await.len(), 2);
    // The reporter's helpdesk amends the report: it returns to the queue at revision 2,
    // and an assessment of what the advisor read before is ABORTED.
    intake_svc
        .client("hal", &[Role::Helpdesk])
        .amend_report(intake::AmendReportRequest {
            report_id: entry.report_id.clone(),
            details: Some(intake::ReportDetails {
                circumstances: "Found to be a second laptop".into(),
                ..Default::default()
            }),
            contact: None,
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["details.circumstances".into()],
            }),
            reason: "the reporter called back".into(),
            expected_revision: 1,
        })
        .await
        .expect("amend");
    let mut back = None;
    eventually("the amended report is back in the queue", async || {
        back = queue(&c, pb::TriageEntryFilter::default())
            .await
            .into_iter()
            .find(|e| e.report_id == entry.report_id);
        back.is_some()
    })
    .await;
    let back = back.unwrap();
    assert_eq!(back.report_revision, 2);
    let err = advisor(&c)
        .assess_report(request(&entry, 2, monitor()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(status_reason(&err).unwrap().0, "REPORT_AMENDED");
    assert_eq!(
        err.get_details_error_info().unwrap().metadata["report_revision"],
        "2"
    );
    let third = assess(&c, request(&back, 2, monitor())).await;
    assert_eq!((third.sequence, third.report_revision), (3, 2));

    // A follow-up brings it back too.
    intake_svc
        .client("hal", &[Role::Helpdesk])
        .add_follow_up(intake::AddFollowUpRequest {
            report_id: entry.report_id.clone(),
            text: "It turned up".into(),
            idempotency_key: key(),
        })
        .await
        .expect("follow up");
    eventually("the followed-up report is back in the queue", async || {
        queue(&c, pb::TriageEntryFilter::default())
            .await
            .iter()
            .any(|e| e.report_id == entry.report_id && e.follow_up_count == 1)
    })
    .await;
}

on_both_backends!(
    assessments_move_the_report_and_are_all_kept,
    stale_views_and_retries,
);
