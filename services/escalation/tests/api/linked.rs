//! Escalation following the real intake and classification (as `custos serve` runs
//! them): a report opens its escalations and its dismissal stops them, an incident opens
//! those its level and flags call for, messages carry nothing that identifies a reporter,
//! and an anonymous report's escalation keeps no time finer than the minute.

use custos_classification::{Classification, ClassificationSettings};
use custos_intake::{Intake, IntakeSettings};
use custos_kit::{auth::Role, service::App};
use custos_proto::{
    classification::v1::{
        self as cl, assess_report_request::Decision,
        classification_service_client::ClassificationServiceClient,
    },
    escalation::v1 as pb,
    intake::v1::{self as intake, intake_service_client::IntakeServiceClient},
};
use custos_testing::{Backend, Running, TestDatabase, on_both_backends};
use uuid::Uuid;

use crate::common::{TestEscalation, eventually, people, settings};

struct Suite {
    intake: (Running, TestDatabase),
    classification: (Running, TestDatabase),
    escalation: TestEscalation,
}

async fn start(backend: Backend) -> Suite {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let (il, cl) = (bind(), bind());
    let url = |l: &std::net::TcpListener| format!("http://{}", l.local_addr().unwrap());
    let (intake_url, classification_url) = (url(&il), url(&cl));
    let idb = TestDatabase::new(backend).await;
    let app = App::build_on::<Intake>(
        custos_testing::config(
            &idb,
            IntakeSettings {
                receipt_secret: Some("test-receipt-secret-0123456789abcdef".into()),
                classification_url: Some(classification_url.clone()),
                ..Default::default()
            },
        ),
        il,
    )
    .await
    .expect("intake starts");
    let intake_running = Running::spawn(app.local_addr(), |s| app.run_until(s));
    let cdb = TestDatabase::new(backend).await;
    let app = App::build_on::<Classification>(
        custos_testing::config(
            &cdb,
            ClassificationSettings {
                intake_url: Some(intake_url.clone()),
                ..Default::default()
            },
        ),
        cl,
    )
    .await
    .expect("classification starts");
    let classification_running = Running::spawn(app.local_addr(), |s| app.run_until(s));
    let escalation =
        TestEscalation::start_with(backend, settings(&intake_url, &classification_url), |_| {})
            .await;
    // The lists the shipped policies route to, each of two people who can act.
    let mut dir = escalation.owner();
    for (kind, who) in [
        (pb::ContactListKind::CentralPointOfContact, "Central"),
        (pb::ContactListKind::HighMedium, "Responder"),
        (pb::ContactListKind::SeniorManagement, "Senior"),
        (pb::ContactListKind::DataProtectionOfficer, "Dpo"),
    ] {
        let ids = people(&mut dir, who, 2).await;
        dir.set_contact_list(pb::SetContactListRequest {
            kind: kind as i32,
            contact_ids: ids,
            revision: 0,
        })
        .await
        .unwrap();
    }
    Suite {
        intake: (intake_running, idb),
        classification: (classification_running, cdb),
        escalation,
    }
}

fn details(personal: bool) -> intake::ReportDetails {
    intake::ReportDetails {
        category: "equipment_theft_or_loss".into(),
        medium: intake::ReportMedium::Electronic as i32,
        data_involved: "Case files of residents".into(),
        risk_to_others: intake::RiskToOthers::Yes as i32,
        risk_details: "About 40 residents".into(),
        incident_location: "Council offices, 2nd floor".into(),
        inventory_numbers: vec!["LT-00421".into()],
        occurred_at: Some(custos_kit::time_fmt::to_timestamp(
            time::OffsetDateTime::now_utc() - time::Duration::hours(2),
        )),
        affected_location: "Desk 14".into(),
        circumstances: "Missing after lunch; Robin Reporter noticed".into(),
        symptoms: String::new(),
        personal_information: personal,
        malware_suspected: false,
    }
}

/// What a reporter said that must never reach a message.
const REPORTER_WORDS: [&str; 8] = [
    "Robin Reporter",
    "01632 960123",
    "robin.reporter@",
    "Case files",
    "Council offices",
    "Desk 14",
    "LT-00421",
    "Missing after lunch",
];

async fn submit(suite: &Suite, personal: bool, anonymous: bool) -> intake::Report {
    use intake::submit_report_request::Reporter;
    let addr = suite.intake.0.addr;
    let mut client = if anonymous {
        IntakeServiceClient::new(custos_testing::anonymous(addr))
    } else {
        IntakeServiceClient::new(custos_testing::authed(addr, "robin", &[Role::Reporter]))
    };
    client
        .submit_report(intake::SubmitReportRequest {
            kind: intake::ReportKind::Event as i32,
            details: Some(details(personal)),
            reporter: Some(if anonymous {
                Reporter::Anonymous(intake::Anonymous {})
            } else {
                Reporter::Contact(intake::ReporterContact {
                    name: "Robin Reporter".into(),
                    phone: "01632 960123".into(),
                    email: "robin.reporter@example.net".into(),
                })
            }),
            idempotency_key: Uuid::new_v4().to_string(),
        })
        .await
        .expect("submit")
        .into_inner()
        .report
        .unwrap()
}

/// The escalations about a subject, once `n` of them exist.
async fn escalations_of(suite: &Suite, subject_id: &str, n: usize) -> Vec<pb::Escalation> {
    let mut found = Vec::new();
    let mut advisor = suite
        .escalation
        .escalations("advisor", &[Role::SecurityAdvisor]);
    eventually("the escalations open", async || {
        found = advisor
            .list_escalations(pb::ListEscalationsRequest {
                filter: Some(pb::EscalationFilter {
                    subject_id: subject_id.into(),
                    ..Default::default()
                }),
                view: pb::EscalationView::Full as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .escalations;
        found.len() >= n
    })
    .await;
    found.sort_by_key(|e| e.trigger);
    found
}

async fn assess(suite: &Suite, report_id: &str, decision: Decision) {
    let mut advisor = ClassificationServiceClient::new(custos_testing::authed(
        suite.classification.0.addr,
        "advisor",
        &[Role::SecurityAdvisor],
    ));
    let mut entry = None;
    eventually("the report is queued", async || {
        entry = advisor
            .list_triage_queue(cl::ListTriageQueueRequest {
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries
            .into_iter()
            .find(|e| e.report_id == report_id);
        entry.is_some()
    })
    .await;
    let entry = entry.unwrap();
    const DIMENSIONS: [&str; 7] = [
        "reputational_media",
        "reputational_government",
        "contractual",
        "legal",
        "financial",
        "disruption",
        "personal_privacy",
    ];
    advisor
        .assess_report(cl::AssessReportRequest {
            report_id: entry.report_id.clone(),
            report_revision: entry.report_revision,
            previous_sequence: 0,
            category: entry.category.clone(),
            figures: None,
            choices: DIMENSIONS
                .iter()
                .map(|d| cl::ImpactChoice {
                    dimension: (*d).into(),
                    row: if *d == "personal_privacy" {
                        "major"
                    } else {
                        "minor"
                    }
                    .into(),
                })
                .collect(),
            decision: Some(decision),
            note: String::new(),
            idempotency_key: Uuid::new_v4().to_string(),
        })
        .await
        .expect("assess");
}

async fn mail_bodies(suite: &Suite, escalation_id: &str) -> Vec<String> {
    let mut conn = suite.escalation.db.read().await.unwrap();
    custos_escalation::store::mail_of(&mut conn, Uuid::parse_str(escalation_id).unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|m| format!("{}\n{}\n{}", m.to_address, m.subject, m.body))
        .collect()
}

async fn a_report_opens_its_escalations_and_its_dismissal_stops_them(backend: Backend) {
    let suite = start(backend).await;
    let report = submit(&suite, true, false).await;
    let opened = escalations_of(&suite, &report.id, 2).await;
    let triggers: Vec<i32> = opened.iter().map(|e| e.trigger).collect();
    assert_eq!(
        triggers,
        [
            pb::EscalationTrigger::ReportReceived as i32,
            pb::EscalationTrigger::PaperOrPersonal as i32
        ],
        "every report, and personal information besides"
    );
    let received = &opened[0];
    let told: Vec<_> = received.tiers[0]
        .nominees
        .iter()
        .map(|n| n.display_name.as_str())
        .collect();
    assert_eq!(
        told,
        ["Central 1", "Central 2"],
        "at least two nominated people"
    );
    let personal: Vec<_> = opened[1].tiers[0]
        .nominees
        .iter()
        .map(|n| n.display_name.as_str())
        .collect();
    assert_eq!(personal, ["Senior 1", "Senior 2", "Dpo 1", "Dpo 2"]);
    for e in &opened {
        let bodies = mail_bodies(&suite, &e.id).await;
        assert!(!bodies.is_empty());
        for body in bodies {
            assert!(body.contains(&report.reference), "{body}");
            for word in REPORTER_WORDS {
                assert!(!body.contains(word), "`{word}` reached a message:\n{body}");
            }
        }
    }

    assess(
        &suite,
        &report.id,
        Decision::Dismiss(cl::DismissDecision {
            reason: "a test".into(),
        }),
    )
    .await;
    let mut stopped = Vec::new();
    eventually("the dismissal stops them", async || {
        stopped = escalations_of(&suite, &report.id, 2).await;
        stopped
            .iter()
            .all(|e| e.state == pb::escalation::State::Stopped as i32)
    })
    .await;
    assert!(
        stopped
            .iter()
            .all(|e| e.stopped_reason == "the report was dismissed")
    );
}

async fn an_incident_opens_what_its_level_and_flags_call_for(backend: Backend) {
    let suite = start(backend).await;
    let report = submit(&suite, true, false).await;
    escalations_of(&suite, &report.id, 2).await;
    assess(
        &suite,
        &report.id,
        Decision::RaiseIncident(cl::RaiseIncidentDecision {
            title: "Laptop lost".into(),
            summary: String::new(),
        }),
    )
    .await;
    let mut report_escalations = Vec::new();
    eventually("the report's escalations stop", async || {
        report_escalations = escalations_of(&suite, &report.id, 2).await;
        report_escalations
            .iter()
            .all(|e| e.state == pb::escalation::State::Stopped as i32)
    })
    .await;
    assert!(
        report_escalations[0]
            .stopped_reason
            .starts_with("the report was taken into incident INC-")
    );
    let mut advisor = suite
        .escalation
        .escalations("advisor", &[Role::SecurityAdvisor]);
    let mut incident = Vec::new();
    eventually("the incident's escalations open", async || {
        incident = advisor
            .list_escalations(pb::ListEscalationsRequest {
                filter: Some(pb::EscalationFilter {
                    states: vec![pb::escalation::State::Open as i32],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .escalations;
        incident.len() == 2
    })
    .await;
    incident.sort_by_key(|e| e.trigger);
    let triggers: Vec<i32> = incident.iter().map(|e| e.trigger).collect();
    assert_eq!(
        triggers,
        [
            pb::EscalationTrigger::IncidentHigh as i32,
            pb::EscalationTrigger::PaperOrPersonal as i32
        ]
    );
    match &incident[0].about {
        Some(pb::escalation::About::Incident(i)) => {
            assert!(i.reference.starts_with("INC-"));
            assert_eq!(i.level, pb::ImpactLevel::High as i32);
            assert!(i.personal_data);
        }
        other => panic!("{other:?}"),
    }
}

async fn an_anonymous_reports_escalation_keeps_no_time_finer_than_the_minute(backend: Backend) {
    let suite = start(backend).await;
    let report = submit(&suite, false, true).await;
    let opened = escalations_of(&suite, &report.id, 1).await;
    let e = &opened[0];
    let whole_minute = |t: &Option<custos_proto::prost_types::Timestamp>| {
        let t = t.as_ref().unwrap();
        t.seconds % 60 == 0 && t.nanos == 0
    };
    assert!(whole_minute(&e.opened_at), "{:?}", e.opened_at);
    assert!(whole_minute(&e.tiers[0].reached_at));
    assert!(
        e.tiers[0]
            .nominees
            .iter()
            .all(|n| whole_minute(&n.notified_at))
    );
    let timeline = suite
        .escalation
        .escalations("advisor", &[Role::SecurityAdvisor])
        .list_escalation_timeline(pb::ListEscalationTimelineRequest {
            escalation_id: e.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(timeline.iter().all(|t| whole_minute(&t.at)));
    // Ids that carry no time, and messages held back to a minute after that minute.
    let id = Uuid::parse_str(&e.id).unwrap();
    assert_eq!(id.get_version_num(), 4, "a random id");
    let mut conn = suite.escalation.db.read().await.unwrap();
    let mail = custos_escalation::store::mail_of(&mut conn, id)
        .await
        .unwrap();
    assert!(!mail.is_empty());
    let opened = e.opened_at.as_ref().unwrap().seconds;
    let held_until = opened + 60;
    for m in &mail {
        assert_eq!(m.id.get_version_num(), 4);
        assert_eq!(m.queued_at.get().unix_timestamp(), opened);
        match m.sent_at {
            // Sent: no sooner than a minute after that minute, and dated to the minute.
            Some(sent) => {
                assert!(sent.get().unix_timestamp() >= held_until);
                assert_eq!(sent, sent.to_minute());
            }
            // Held (or taken by the sender, whose claim moves it later still).
            None => assert!(m.next_attempt_at.get().unix_timestamp() >= held_until),
        }
    }
}

on_both_backends!(
    a_report_opens_its_escalations_and_its_dismissal_stops_them,
    an_incident_opens_what_its_level_and_flags_call_for,
    an_anonymous_reports_escalation_keeps_no_time_finer_than_the_minute,
);
