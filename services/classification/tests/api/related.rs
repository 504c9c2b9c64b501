//! SuggestRelated and the "possible incident" flag end to end: reports sharing an
//! inventory number, a location or a category within the window are suggested, with the
//! incidents that hold them; enough of them flag a possible incident in the queue; and
//! the inventory numbers and locations themselves never reach classification.

use custos_kit::{auth::Role, error::status_reason};
use custos_proto::{
    classification::v1::{self as pb, assess_report_request::Decision},
    intake::v1 as intake,
};
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::*;

fn at(inventory: &str, location: &str, category: &str) -> intake::ReportDetails {
    intake::ReportDetails {
        inventory_numbers: if inventory.is_empty() {
            vec![]
        } else {
            vec![inventory.into()]
        },
        incident_location: location.into(),
        affected_location: String::new(),
        ..details(category, intake::ReportMedium::Electronic, false)
    }
}

async fn suggest(c: &TestClassification, report_id: &str) -> pb::SuggestRelatedResponse {
    c.client("sam", &[Role::SecurityAdvisor])
        .suggest_related(pb::SuggestRelatedRequest {
            report_id: report_id.into(),
        })
        .await
        .expect("suggest")
        .into_inner()
}

fn by(reasons: &[pb::RelatedBy]) -> Vec<i32> {
    reasons.iter().map(|r| *r as i32).collect()
}

async fn a_series_of_reports_is_suggested_and_flagged(backend: Backend) {
    use pb::RelatedBy::{Category, InventoryNumber, Location};
    let (intake_svc, c) = start_linked(backend).await;
    let submit_at = async |d| submit(&intake_svc, intake::ReportKind::Event, d, false).await;
    // Three reports about one laptop (its number written three ways), two of them in the
    // same room; one unrelated report; one of the same category as the first.
    let first = submit_at(at(
        "LT-00421",
        "Finance office, 2nd floor",
        "equipment_theft_or_loss",
    ))
    .await;
    let second = submit_at(at(
        "lt 00421",
        "finance office 2nd floor",
        "unauthorised_access",
    ))
    .await;
    let third = submit_at(at("LT00421", "Reception", "malware_infection")).await;
    let unrelated = submit_at(at("PR-7", "Depot", "unauthorised_transfer")).await;
    let same_category = submit_at(at("", "Library", "equipment_theft_or_loss")).await;
    // An anonymous report about the same laptop: intake sends no keys for it, so it is
    // never tied to the named reports by them.
    let anonymous = submit(
        &intake_svc,
        intake::ReportKind::Event,
        at("LT-00421", "Finance office, 2nd floor", "phishing"),
        true,
    )
    .await;
    eventually("six reports queued", async || queue_len(&c).await == 6).await;

    let s = suggest(&c, &first.id).await;
    let related: Vec<(String, Vec<i32>)> = s
        .reports
        .iter()
        .map(|r| (r.reference.clone(), r.related_by.clone()))
        .collect();
    let mut expected = vec![
        (second.reference.clone(), by(&[InventoryNumber, Location])),
        (third.reference.clone(), by(&[InventoryNumber])),
        (same_category.reference.clone(), by(&[Category])),
    ];
    expected.sort();
    let mut related_sorted = related.clone();
    related_sorted.sort();
    assert_eq!(related_sorted, expected);
    assert!(s.possible_incident);
    assert_eq!((s.threshold, s.category_threshold), (3, 10));
    assert_eq!(s.window.unwrap().seconds, 72 * 3600);
    assert!(s.incidents.is_empty());

    // The queue shows the flag on the series of three, not on the unrelated report, nor
    // on the one that shares only the category (two of a category are no series: ten
    // are), nor on the anonymous one.
    let flagged: Vec<(String, bool)> = {
        let mut v: Vec<(String, bool)> = queue(&c, pb::TriageEntryFilter::default())
            .await
            .into_iter()
            .map(|e| (e.reference, e.possible_incident))
            .collect();
        v.sort();
        v
    };
    let series = [&first.reference, &second.reference, &third.reference];
    for (reference, flag) in &flagged {
        assert_eq!(*flag, series.contains(&reference), "{reference}");
    }
    assert!(!suggest(&c, &unrelated.id).await.possible_incident);
    assert!(!suggest(&c, &same_category.id).await.possible_incident);
    let s = suggest(&c, &anonymous.id).await;
    assert!(s.reports.is_empty() && !s.possible_incident, "{s:?}");

    // Raised as an incident, the first is suggested as that incident to the others.
    let entry = queue(&c, pb::TriageEntryFilter::default())
        .await
        .into_iter()
        .find(|e| e.report_id == first.id)
        .unwrap();
    let raised = c
        .client("sam", &[Role::SecurityAdvisor])
        .assess_report(pb::AssessReportRequest {
            report_id: entry.report_id.clone(),
            report_revision: entry.report_revision,
            previous_sequence: 0,
            category: entry.category.clone(),
            figures: None,
            choices: DIMENSIONS
                .iter()
                .map(|d| pb::ImpactChoice {
                    dimension: (*d).into(),
                    row: "moderate".into(),
                })
                .collect(),
            decision: Some(Decision::RaiseIncident(pb::RaiseIncidentDecision {
                title: "Stolen laptop".into(),
                summary: String::new(),
            })),
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .assessment
        .unwrap();
    let s = suggest(&c, &second.id).await;
    assert_eq!(s.incidents.len(), 1);
    assert_eq!(s.incidents[0].reference, raised.incident_reference);
    assert_eq!(s.incidents[0].title, "Stolen laptop");
    assert_eq!(s.incidents[0].related_by, by(&[InventoryNumber, Location]));
    assert!(
        s.reports.iter().all(|r| r.report_id != first.id),
        "no longer open"
    );
    // The incident's category brings it to a report of that category too; not to the
    // report it holds.
    let s = suggest(&c, &same_category.id).await;
    assert_eq!(s.incidents[0].related_by, by(&[Category]));
    assert!(
        suggest(&c, &first.id).await.incidents.is_empty(),
        "its own incident"
    );

    // The words themselves never reached classification: only intake's keyed digests.
    let dump = custos_testing::dump_tables(&c.db).await;
    for words in [
        "LT-00421",
        "00421",
        "Finance office",
        "finance office",
        "Reception",
        "Depot",
    ] {
        assert!(!dump.contains(words), "{words} reached classification");
    }

    let err = c
        .client("sam", &[Role::SecurityAdvisor])
        .suggest_related(pb::SuggestRelatedRequest {
            report_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status_reason(&err).unwrap().0, "REPORT_NOT_FOUND");
    let err = c
        .client("sam", &[Role::SecurityAdvisor])
        .suggest_related(pb::SuggestRelatedRequest {
            report_id: "SIR-2026-000001".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for role in [Role::Reporter, Role::Helpdesk] {
        let err = c
            .client("x", &[role])
            .suggest_related(pb::SuggestRelatedRequest {
                report_id: first.id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{role:?}");
    }
}

on_both_backends!(a_series_of_reports_is_suggested_and_flagged);
