//! The triage queue end to end: reports submitted to a real intake reach classification's
//! queue through intake's feed, amendments and follow-ups update them, a replayed feed
//! changes nothing, and nothing but routing facts crosses.

use custos_kit::{
    auth::Role,
    error::{status_reason, status_violations},
};
use custos_proto::{classification::v1 as pb, intake::v1 as intake};
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::*;

async fn reports_reach_the_queue_and_stay_in_step(backend: Backend) {
    let intake_svc = TestIntake::start(backend).await;
    let c = TestClassification::start_with(backend, settings(&intake_svc.url())).await;
    use intake::{ReportKind, ReportMedium};
    let theft = submit(
        &intake_svc,
        ReportKind::Event,
        details("equipment_theft_or_loss", ReportMedium::Electronic, false),
        false,
    )
    .await;
    let (anonymous, receipt) = submit_with_receipt(
        &intake_svc,
        ReportKind::Event,
        details("unauthorised_access", ReportMedium::Paper, true),
        true,
    )
    .await;
    let weakness = submit(
        &intake_svc,
        ReportKind::Weakness,
        intake::ReportDetails {
            risk_to_others: 0,
            incident_location: String::new(),
            inventory_numbers: vec![],
            occurred_at: None,
            ..details("application_malfunction", ReportMedium::Electronic, false)
        },
        false,
    )
    .await;
    eventually("three reports queued", async || queue_len(&c).await == 3).await;

    let entries = queue(&c, pb::TriageEntryFilter::default()).await;
    let references: Vec<&str> = entries.iter().map(|e| e.reference.as_str()).collect();
    // Oldest first; the anonymous report's time is cut to the minute, so it may sort
    // before the named report submitted in the same minute.
    assert_eq!(references.len(), 3);
    for r in [&theft, &anonymous, &weakness] {
        assert!(
            references.contains(&r.reference.as_str()),
            "{}",
            r.reference
        );
    }
    let times: Vec<_> = entries
        .iter()
        .map(|e| {
            let t = e.submitted_at.unwrap();
            (t.seconds, t.nanos)
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );

    let by_ref = |r: &str| entries.iter().find(|e| e.reference == r).unwrap().clone();
    let t = by_ref(&theft.reference);
    assert_eq!(t.report_id, theft.id);
    assert_eq!(t.kind, ReportKind::Event as i32);
    assert_eq!(t.category, "equipment_theft_or_loss");
    assert_eq!(t.medium, ReportMedium::Electronic as i32);
    assert!(!t.personal_information && !t.anonymous);
    assert_eq!((t.follow_up_count, t.report_revision), (0, 1));
    let submitted = theft.submitted_at.unwrap();
    assert_eq!(
        t.submitted_at.unwrap().seconds,
        submitted.seconds - submitted.seconds % 60,
        "to the minute"
    );

    let a = by_ref(&anonymous.reference);
    assert!(a.anonymous && a.personal_information);
    assert!(
        a.requires_senior_management_notice,
        "paper and personal information"
    );

    // Filters.
    let only = |filter: pb::TriageEntryFilter| {
        let c = &c;
        async move {
            let mut refs: Vec<String> = queue(c, filter)
                .await
                .into_iter()
                .map(|e| e.reference)
                .collect();
            refs.sort();
            refs
        }
    };
    assert_eq!(
        only(pb::TriageEntryFilter {
            kind: ReportKind::Weakness as i32,
            ..Default::default()
        })
        .await,
        vec![weakness.reference.clone()]
    );
    assert_eq!(
        only(pb::TriageEntryFilter {
            personal_information: Some(true),
            ..Default::default()
        })
        .await,
        vec![anonymous.reference.clone()]
    );
    assert_eq!(
        only(pb::TriageEntryFilter {
            medium: ReportMedium::Paper as i32,
            categories: vec!["unauthorised_access".into()],
            ..Default::default()
        })
        .await,
        vec![anonymous.reference.clone()]
    );
    assert!(
        only(pb::TriageEntryFilter {
            submitted_before: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0
            }),
            ..Default::default()
        })
        .await
        .is_empty(),
        "nothing waits since 1970"
    );

    // An amendment and a follow-up reach the entry.
    intake_svc
        .client("desk", &[Role::Helpdesk])
        .amend_report(intake::AmendReportRequest {
            report_id: theft.id.clone(),
            details: Some(intake::ReportDetails {
                category: "unauthorised_access".into(),
                medium: ReportMedium::Paper as i32,
                personal_information: true,
                malware_suspected: true,
                ..Default::default()
            }),
            contact: None,
            update_mask: Some(prost_types::FieldMask {
                paths: vec![
                    "details.category".into(),
                    "details.medium".into(),
                    "details.personal_information".into(),
                    "details.malware_suspected".into(),
                ],
            }),
            reason: "paper copies were taken too".into(),
            expected_revision: 0,
        })
        .await
        .expect("amend");
    intake_svc
        .client("alex", &[Role::Reporter])
        .add_follow_up(intake::AddFollowUpRequest {
            report_id: theft.id.clone(),
            text: "The laptop bag is gone too".into(),
            idempotency_key: key(),
        })
        .await
        .expect("follow up");
    // The anonymous reporter adds information with the receipt.
    intake_svc
        .anonymous()
        .add_receipt_information(intake::AddReceiptInformationRequest {
            receipt,
            text: "It happened twice".into(),
            idempotency_key: key(),
        })
        .await
        .expect("add with the receipt");
    eventually("the amendment and follow-ups applied", async || {
        let e = queue(&c, pb::TriageEntryFilter::default()).await;
        e.iter().any(|e| {
            e.reference == theft.reference && e.follow_up_count == 1 && e.report_revision == 2
        }) && e
            .iter()
            .any(|e| e.reference == anonymous.reference && e.follow_up_count == 1)
    })
    .await;
    // No time finer than the minute, for any report.
    for e in queue(&c, pb::TriageEntryFilter::default()).await {
        for t in [e.submitted_at, e.last_activity_at] {
            let t = t.unwrap();
            assert_eq!(
                (t.seconds % 60, t.nanos),
                (0, 0),
                "{}: to the minute",
                e.reference
            );
        }
    }
    let t = queue(&c, pb::TriageEntryFilter::default())
        .await
        .into_iter()
        .find(|e| e.reference == theft.reference)
        .unwrap();
    assert_eq!(t.category, "unauthorised_access");
    assert_eq!(t.medium, ReportMedium::Paper as i32);
    assert!(t.personal_information && t.requires_senior_management_notice);
    assert!(t.malware_suspected, "amended");
    assert!(t.occurred_at.is_some(), "not named by the amendment: kept");
    let before_replay = queue(&c, pb::TriageEntryFilter::default()).await;

    // Pages: a token goes on with its own filter only.
    let mut advisor = c.client("sam", &[Role::SecurityAdvisor]);
    let page = |filter: pb::TriageEntryFilter, page_token: String| pb::ListTriageQueueRequest {
        filter: Some(filter),
        page_size: 2,
        page_token,
    };
    let first = advisor
        .list_triage_queue(page(Default::default(), String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.entries.len(), 2);
    let second = advisor
        .list_triage_queue(page(Default::default(), first.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.entries.len(), 1);
    assert!(second.next_page_token.is_empty(), "the last page");
    let mut all: Vec<_> = first.entries.into_iter().chain(second.entries).collect();
    all.sort_by(|a, b| a.reference.cmp(&b.reference));
    let mut expected = before_replay.clone();
    expected.sort_by(|a, b| a.reference.cmp(&b.reference));
    assert_eq!(all, expected, "every entry once across the pages");
    let err = advisor
        .list_triage_queue(page(
            pb::TriageEntryFilter {
                kind: ReportKind::Event as i32,
                ..Default::default()
            },
            first.next_page_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(status_violations(&err)[0].field, "page_token");

    // The whole feed delivered again: every event has already had its one effect.
    let consumer = &c.app_consumers[0];
    let caught_up = consumer.cursor().await.unwrap();
    consumer.reset("").await.unwrap();
    eventually("the feed replayed", async || {
        consumer.cursor().await.unwrap() == caught_up
    })
    .await;
    assert_eq!(
        queue(&c, pb::TriageEntryFilter::default()).await,
        before_replay,
        "a replayed feed changes nothing (the kit applies each event once; the store's own \
         idempotency, should it run again, is in store_contract)"
    );

    // Nothing that identifies a reporter, nor any free text, crossed into
    // classification's database.
    let stored = custos_testing::dump_tables(&c.db).await;
    for secret in [
        "Alex Example",
        "01632 960123",
        "alex@example.org",
        "Desk 14",
        "residents",
        "LT-00421",
    ] {
        assert!(
            !stored.contains(secret),
            "`{secret}` is in classification's database"
        );
    }
    assert!(
        stored.contains(&theft.reference),
        "the dump holds the queue"
    );
}

on_both_backends!(reports_reach_the_queue_and_stay_in_step);

#[tokio::test]
async fn only_advisors_and_services_see_the_queue() {
    let c = TestClassification::start(Backend::Sqlite).await;
    let err = c
        .anonymous()
        .list_triage_queue(pb::ListTriageQueueRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    for role in [
        Role::Reporter,
        Role::Helpdesk,
        Role::IncidentOfficer,
        Role::Admin,
    ] {
        let err = c
            .client("x", &[role])
            .list_triage_queue(pb::ListTriageQueueRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{role}");
        assert_eq!(
            status_reason(&err),
            Some(("ROLE_REQUIRED".into(), "classification.custos".into()))
        );
    }
    for role in [Role::SecurityAdvisor, Role::Service] {
        c.client("x", &[role])
            .list_triage_queue(pb::ListTriageQueueRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{role}: {e:?}"));
    }
}

#[tokio::test]
async fn bad_queue_requests_name_their_fields() {
    let c = TestClassification::start(Backend::Sqlite).await;
    let mut advisor = c.client("sam", &[Role::SecurityAdvisor]);
    let err = advisor
        .list_triage_queue(pb::ListTriageQueueRequest {
            filter: Some(pb::TriageEntryFilter {
                kind: 9,
                medium: 7,
                categories: vec!["x".repeat(65)],
                submitted_after: Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            page_size: -1,
            page_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = status_violations(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "filter.kind",
            "filter.medium",
            "filter.submitted_after",
            "filter.categories[0]",
            "page_size",
            "page_token"
        ]
    );
}

/// In production a service presents a token it is given (a file, e.g. a projected
/// token), read again for every feed subscription so that it can be rotated.
#[tokio::test]
async fn the_service_token_file_is_read_again_for_each_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let missing = dir.path().join("missing");
    let database = custos_testing::TestDatabase::new(Backend::Sqlite).await;
    let mut config: custos_classification::Config =
        custos_testing::config(&database, settings(NO_INTAKE));
    config.auth.service_token_file = Some(missing.clone());
    let err = custos_kit::service::App::build::<custos_classification::Classification>(config)
        .await
        .expect_err("an unreadable token file stops the start");
    let text = custos_kit::error::DisplayChain(&err).to_string();
    assert!(text.contains("auth.service_token_file"), "{text}");

    // A token without the `service` role: intake refuses the feed.
    std::fs::write(
        &path,
        custos_testing::token("classification", &[Role::Reporter]),
    )
    .unwrap();
    let intake_svc = TestIntake::start(Backend::Sqlite).await;
    let c =
        TestClassification::start_config(Backend::Sqlite, settings(&intake_svc.url()), |config| {
            config.auth.service_token_file = Some(path.clone());
        })
        .await;
    submit(
        &intake_svc,
        intake::ReportKind::Weakness,
        intake::ReportDetails {
            risk_to_others: 0,
            incident_location: String::new(),
            inventory_numbers: vec![],
            occurred_at: None,
            ..details(
                "application_malfunction",
                intake::ReportMedium::Electronic,
                false,
            )
        },
        false,
    )
    .await;
    let consumer = &c.app_consumers[0];
    eventually("the feed refused the token", async || {
        matches!(consumer.state(), custos_kit::consumer::ConsumerState::Connecting(why)
            if why.contains("role"))
    })
    .await;
    assert_eq!(queue_len(&c).await, 0, "refused with the wrong token");

    // The token rotated: the next connection presents it.
    std::fs::write(
        &path,
        custos_testing::token("classification", &[Role::Service]),
    )
    .unwrap();
    eventually("the report queued once the token is right", async || {
        queue_len(&c).await == 1
    })
    .await;
}
