//! Reading, listing, amending and following up reports.

use custos_kit::{auth::Role, error::status_violations};
use custos_proto::intake::v1::{self as pb, get_report_request::Lookup};
use custos_testing::{Backend, on_both_backends};
use prost_types::FieldMask;
use tonic::Code;
use uuid::Uuid;

use crate::common::*;

fn by_id(id: &str) -> pb::GetReportRequest {
    pb::GetReportRequest {
        lookup: Some(Lookup::ReportId(id.to_owned())),
    }
}

async fn who_sees_what(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let report = submit_event(&intake, "alex").await;
    for (who, roles) in [
        ("desk", vec![Role::Helpdesk]),
        ("advisor", vec![Role::SecurityAdvisor]),
        ("alex", vec![Role::Reporter]),
    ] {
        let got = intake
            .client(who, &roles)
            .get_report(by_id(&report.id))
            .await;
        assert!(got.is_ok(), "{who} sees the report");
    }
    let by_reference = intake
        .client("desk", &[Role::Helpdesk])
        .get_report(pb::GetReportRequest {
            lookup: Some(Lookup::Reference(report.reference.clone())),
        })
        .await
        .unwrap();
    assert_eq!(by_reference.into_inner().report.unwrap().id, report.id);
    // Another reporter, or someone with an unrelated role, is told it does not exist:
    // exactly what a missing report gets.
    for (who, roles) in [
        ("sam", vec![Role::Reporter]),
        ("bc", vec![Role::BusinessContinuity]),
    ] {
        let err = intake
            .client(who, &roles)
            .get_report(by_id(&report.id))
            .await
            .unwrap_err();
        let missing = intake
            .client(who, &roles)
            .get_report(by_id(&Uuid::now_v7().to_string()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), missing.message());
    }
    let err = intake
        .client("desk", &[Role::Helpdesk])
        .get_report(by_id("not-a-uuid"))
        .await
        .unwrap_err();
    assert_eq!(status_violations(&err)[0].field, "report_id");

    // Reads of personal data are audited.
    let id = Uuid::parse_str(&report.id).unwrap();
    let audit = custos_kit::audit::entries(intake.db.read().await.unwrap(), &id.to_string())
        .await
        .unwrap();
    let readers: Vec<&str> = audit.iter().map(|(actor, _)| actor.as_str()).collect();
    assert_eq!(readers, ["desk", "advisor", "alex", "desk"]);
}

async fn listing_filters_and_pages(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut alex = intake.client("alex", &[Role::Reporter]);
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut details = if i % 2 == 0 {
            event_details()
        } else {
            weakness_details()
        };
        if i == 4 {
            details.medium = pb::ReportMedium::Paper as i32;
        }
        let kind = if i % 2 == 0 {
            pb::ReportKind::Event
        } else {
            pb::ReportKind::Weakness
        };
        let r = alex
            .submit_report(named(details, kind))
            .await
            .unwrap()
            .into_inner()
            .report
            .unwrap();
        ids.push(r.id);
    }
    submit_event(&intake, "sam").await;
    let mut desk = intake.client("desk", &[Role::Helpdesk]);
    let list =
        |filter: pb::ReportFilter, page_size: i32, page_token: String| pb::ListReportsRequest {
            filter: Some(filter),
            page_size,
            page_token,
            view: 0,
        };

    // Pages of two, newest first, covering everything once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = desk
            .list_reports(list(Default::default(), 2, token))
            .await
            .unwrap()
            .into_inner();
        assert!(page.reports.len() <= 2);
        seen.extend(page.reports.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "UUIDv7 ids sort like their submission times");

    // Each filter on its own (every report here was submitted within the last hour).
    let mut filtered = async |filter: pb::ReportFilter| {
        desk.list_reports(list(filter, 0, String::new()))
            .await
            .unwrap()
            .into_inner()
            .reports
    };
    let weaknesses = filtered(pb::ReportFilter {
        kind: pb::ReportKind::Weakness as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(weaknesses.len(), 2);
    let paper = filtered(pb::ReportFilter {
        medium: pb::ReportMedium::Paper as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(
        paper.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        [ids[4].clone()]
    );
    let category = filtered(pb::ReportFilter {
        category: "application_malfunction".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(category.len(), 2);
    let future = filtered(pb::ReportFilter {
        submitted_after: Some(hours_ago(-1)),
        ..Default::default()
    })
    .await;
    assert!(future.is_empty());
    let past = filtered(pb::ReportFilter {
        submitted_before: Some(hours_ago(-1)),
        submitted_after: Some(hours_ago(1)),
        ..Default::default()
    })
    .await;
    assert_eq!(past.len(), 6);

    // A reporter lists only their own.
    let own = alex
        .list_reports(pb::ListReportsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert_eq!(own.len(), 5);

    let err = desk
        .list_reports(list(
            pb::ReportFilter {
                kind: 77,
                ..Default::default()
            },
            -1,
            "garbage".into(),
        ))
        .await
        .unwrap_err();
    let mut fields: Vec<String> = status_violations(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    assert_eq!(fields, ["filter.kind", "page_size", "page_token"]);
}

async fn amendments_keep_the_original_and_every_change(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let report = submit_event(&intake, "alex").await;
    let mut desk = intake.client("desk", &[Role::Helpdesk]);
    let amend = |paths: &[&str],
                 details: pb::ReportDetails,
                 contact: Option<pb::ReporterContact>,
                 expected: i32| pb::AmendReportRequest {
        report_id: report.id.clone(),
        details: Some(details),
        contact,
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        reason: "caller rang back with details".into(),
        expected_revision: expected,
    };
    let mut details = event_details();
    details.category = "loss_or_theft_of_data".into();
    details.medium = pb::ReportMedium::Paper as i32;
    details.circumstances = "THIS MUST NOT BE APPLIED: not in the mask".into();
    let first = desk
        .amend_report(amend(
            &["details.category", "details.medium"],
            details,
            None,
            1,
        ))
        .await
        .unwrap()
        .into_inner();
    let amended = first.report.unwrap();
    assert_eq!(amended.revision, 2);
    assert!(amended.requires_senior_management_notice, "paper now");
    assert_eq!(
        amended.details.as_ref().unwrap().circumstances,
        event_details().circumstances
    );
    let revision = first.revision.unwrap();
    assert_eq!(revision.changed_by, "desk");
    let changed: Vec<_> = revision
        .changes
        .iter()
        .map(|c| (c.field.as_str(), c.old_value.as_str(), c.new_value.as_str()))
        .collect();
    assert_eq!(
        changed,
        [
            (
                "details.category",
                "equipment_theft_or_loss",
                "loss_or_theft_of_data"
            ),
            (
                "details.medium",
                "REPORT_MEDIUM_ELECTRONIC",
                "REPORT_MEDIUM_PAPER"
            ),
        ]
    );

    let new_contact = pb::ReporterContact {
        phone: "01632 960999".into(),
        ..contact()
    };
    desk.amend_report(amend(
        &["contact.phone"],
        pb::ReportDetails::default(),
        Some(new_contact),
        0,
    ))
    .await
    .unwrap();

    // A stale revision is refused; a no-op and an unknown path are invalid.
    let stale = desk
        .amend_report(amend(
            &["details.symptoms"],
            pb::ReportDetails {
                symptoms: "x".into(),
                ..Default::default()
            },
            None,
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let noop = desk
        .amend_report(amend(
            &["details.category"],
            pb::ReportDetails {
                category: "loss_or_theft_of_data".into(),
                ..Default::default()
            },
            None,
            0,
        ))
        .await
        .unwrap_err();
    assert_eq!(status_violations(&noop)[0].field, "update_mask");
    let unknown = desk
        .amend_report(amend(
            &["details.nope", "reference"],
            Default::default(),
            None,
            0,
        ))
        .await
        .unwrap_err();
    assert_eq!(status_violations(&unknown).len(), 2);
    let invalid = desk
        .amend_report(amend(
            &["details.occurred_at"],
            pb::ReportDetails::default(),
            None,
            0,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status_violations(&invalid)[0].field,
        "details.occurred_at",
        "an event keeps its time"
    );
    // A reporter may not amend, even their own.
    let denied = intake
        .client("alex", &[Role::Reporter])
        .amend_report(amend(&["details.symptoms"], Default::default(), None, 0))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let full = desk
        .get_report(by_id(&report.id))
        .await
        .unwrap()
        .into_inner();
    let history = full.history;
    assert_eq!(
        history.iter().map(|r| r.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(history[0].changed_by, "alex");
    let original_category = history[0]
        .changes
        .iter()
        .find(|c| c.field == "details.category")
        .unwrap();
    assert_eq!(
        original_category.new_value, "equipment_theft_or_loss",
        "the original is kept"
    );
    let original_phone = history[0]
        .changes
        .iter()
        .find(|c| c.field == "contact.phone")
        .unwrap();
    assert_eq!(original_phone.new_value, "01632 960123");
    assert_eq!(history[2].changes[0].field, "contact.phone");
    assert_eq!(full.report.unwrap().contact.unwrap().phone, "01632 960999");

    // An anonymous report has no contact to amend.
    let anon = intake
        .anonymous()
        .submit_report(anonymous_event())
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let err = desk
        .amend_report(pb::AmendReportRequest {
            report_id: anon.id,
            ..amend(&["contact.name"], Default::default(), Some(contact()), 0)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

async fn follow_ups_by_the_reporter_and_staff(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let report = submit_event(&intake, "alex").await;
    let add = |text: &str| pb::AddFollowUpRequest {
        report_id: report.id.clone(),
        text: text.into(),
        idempotency_key: String::new(),
    };
    intake
        .client("alex", &[Role::Reporter])
        .add_follow_up(add("It was a grey Dell"))
        .await
        .unwrap();
    intake
        .client("desk", &[Role::Helpdesk])
        .add_follow_up(add("Called the reporter"))
        .await
        .unwrap();
    let err = intake
        .client("sam", &[Role::Reporter])
        .add_follow_up(add("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // A role that may read every report, but not add to them, is told so.
    let err = intake
        .client("svc", &[Role::Service])
        .add_follow_up(add("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = intake
        .client("alex", &[Role::Reporter])
        .add_follow_up(add("  "))
        .await
        .unwrap_err();
    assert_eq!(status_violations(&err)[0].field, "text");
    let full = intake
        .client("alex", &[Role::Reporter])
        .get_report(by_id(&report.id))
        .await
        .unwrap()
        .into_inner();
    let by: Vec<_> = full
        .follow_ups
        .iter()
        .map(|f| f.added_by.as_str())
        .collect();
    assert_eq!(by, ["alex", "desk"]);
}

/// The basic view has no personal data (no contact, no submitter, no free text), so its
/// reads are not audited; the full view's are, report by report, and so is an amendment,
/// whose answer holds the whole report.
async fn list_views_and_what_is_audited(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let report = submit_event(&intake, "alex").await;
    let mut desk = intake.client("desk", &[Role::Helpdesk]);
    let list = |view: pb::ReportView| pb::ListReportsRequest {
        view: view as i32,
        ..Default::default()
    };
    let basic = desk
        .list_reports(list(pb::ReportView::Basic))
        .await
        .unwrap()
        .into_inner()
        .reports;
    let listed = &basic[0];
    assert_eq!(listed.reference, report.reference);
    assert!(listed.contact.is_none() && listed.submitted_by.is_empty());
    let details = listed.details.as_ref().unwrap();
    assert_eq!(details.category, "equipment_theft_or_loss");
    assert!(details.circumstances.is_empty() && details.data_involved.is_empty());
    let audited = async || {
        custos_kit::audit::entries(intake.db.read().await.unwrap(), &report.id)
            .await
            .unwrap()
    };
    assert!(
        audited().await.is_empty(),
        "the basic view reads no personal data"
    );
    let full = desk
        .list_reports(list(pb::ReportView::Full))
        .await
        .unwrap()
        .into_inner()
        .reports;
    assert_eq!(full[0].contact.as_ref().unwrap().name, contact().name);
    assert_eq!(
        audited().await,
        [("desk".to_owned(), "report.list".to_owned())]
    );
    desk.amend_report(pb::AmendReportRequest {
        report_id: report.id.clone(),
        details: Some(pb::ReportDetails {
            symptoms: "Screen cracked".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["details.symptoms".into()],
        }),
        reason: "more detail".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        audited().await.last().unwrap(),
        &("desk".to_owned(), "report.amend".to_owned())
    );
    let err = desk
        .list_reports(pb::ListReportsRequest {
            view: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status_violations(&err)[0].field, "view");
}

on_both_backends!(
    who_sees_what,
    listing_filters_and_pages,
    amendments_keep_the_original_and_every_change,
    follow_ups_by_the_reporter_and_staff,
    list_views_and_what_is_audited,
);
