//! EscalationService over gRPC: nominees acknowledge (once: a retry gets the first back),
//! those who may not see an escalation are told it does not exist, lists filter and
//! page, and the timeline says what happened. Escalations are opened by the engine here;
//! `linked.rs` opens them from real feeds.

use custos_escalation::{
    directory::Trigger,
    engine::{self, Subject},
    escalation::{Facts, SubjectKind},
};
use custos_kit::{auth::Role, storage::DbTime};
use custos_proto::escalation::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use time::{Duration, OffsetDateTime};
use tonic::Code;
use uuid::Uuid;

use crate::common::{TestEscalation, fields, people, reason};

/// Fills the high/medium list with two nominees (subjects `nominee-1`, `nominee-2`) and
/// opens a high incident's escalation; returns its id.
async fn opened(svc: &TestEscalation, reference: &str) -> String {
    let mut dir = svc.owner();
    let lists = dir
        .list_contact_lists(pb::ListContactListsRequest {})
        .await
        .unwrap()
        .into_inner()
        .lists;
    let hm = &lists[pb::ContactListKind::HighMedium as usize - 1];
    if hm.contact_ids.is_empty() {
        let ids = people(&mut dir, "Nominee", 2).await;
        dir.set_contact_list(pb::SetContactListRequest {
            kind: pb::ContactListKind::HighMedium as i32,
            contact_ids: ids,
            revision: 0,
        })
        .await
        .unwrap();
    }
    let subject = Subject {
        kind: SubjectKind::Incident,
        id: Uuid::now_v7(),
        reference: reference.into(),
        facts: Facts {
            category: "malware".into(),
            level: Some(3),
            ..Facts::default()
        },
        anonymous: false,
    };
    let mut tx = svc.db.begin().await.unwrap();
    let id = engine::open(&mut tx, Trigger::IncidentHigh, &subject, DbTime::now())
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    id.to_string()
}

fn ack(id: &str, note: &str) -> pb::AcknowledgeEscalationRequest {
    pb::AcknowledgeEscalationRequest {
        escalation_id: id.into(),
        note: note.into(),
    }
}

async fn every_nominee_acknowledges_once_and_a_retry_gets_the_first_back(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let id = opened(&svc, "INC-2026-000001").await;
    let mut first = svc.escalations("nominee-1", &[Role::Responder]);
    let got = first
        .get_escalation(pb::GetEscalationRequest {
            escalation_id: id.clone(),
            view: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .escalation
        .unwrap();
    assert_eq!(got.state, pb::escalation::State::Open as i32);
    assert_eq!(got.tiers.len(), 1);
    assert_eq!(
        got.tiers[0].nominees.len(),
        2,
        "GetEscalation's default view is FULL"
    );
    assert!(got.next_deadline_at.is_some());
    match got.about {
        Some(pb::escalation::About::Incident(i)) => {
            assert_eq!(i.reference, "INC-2026-000001");
            assert_eq!(i.level, pb::ImpactLevel::High as i32);
        }
        other => panic!("{other:?}"),
    }

    let a = first
        .acknowledge_escalation(ack(&id, "isolated the host"))
        .await
        .unwrap()
        .into_inner();
    assert!(a.recorded);
    let e = a.escalation.unwrap();
    assert_eq!(
        e.state,
        pb::escalation::State::Open as i32,
        "one of two is not the tier"
    );
    assert_eq!(
        (e.tiers[0].nominee_count, e.tiers[0].acknowledged_count),
        (2, 1)
    );
    let again = first
        .acknowledge_escalation(ack(&id, "something else"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.recorded);
    assert_eq!(
        (again.note.as_str(), again.acknowledged_at),
        ("isolated the host", a.acknowledged_at)
    );

    let done = svc
        .escalations("nominee-2", &[Role::Responder])
        .acknowledge_escalation(ack(&id, "reset the account"))
        .await
        .unwrap()
        .into_inner()
        .escalation
        .unwrap();
    assert_eq!(done.state, pb::escalation::State::Satisfied as i32);
    assert!(done.next_deadline_at.is_none());
    let n = &done.tiers[0].nominees;
    assert_eq!(
        n.iter()
            .map(|n| n.acknowledged_by.as_str())
            .collect::<Vec<_>>(),
        ["nominee-1", "nominee-2"]
    );

    let mut timeline = Vec::new();
    let mut token = String::new();
    loop {
        let page = first
            .list_escalation_timeline(pb::ListEscalationTimelineRequest {
                escalation_id: id.clone(),
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        timeline.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let sequences: Vec<i32> = timeline.iter().map(|t| t.sequence).collect();
    assert_eq!(sequences, (1..=timeline.len() as i32).collect::<Vec<_>>());
    use pb::timeline_entry::Kind;
    // (The mail sender's MESSAGE_SENT entries come when they come.)
    let kinds: Vec<i32> = timeline
        .iter()
        .map(|t| t.kind)
        .filter(|k| *k != Kind::MessageSent as i32)
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::Opened,
            Kind::TierReached,
            Kind::MessageQueued,
            Kind::MessageQueued,
            Kind::Acknowledged,
            Kind::Acknowledged,
            Kind::Satisfied
        ]
        .map(|k| k as i32)
    );
    assert!(
        timeline
            .iter()
            .filter(|t| t.kind == Kind::MessageQueued as i32)
            .all(|t| t.channel == "email")
    );
}

async fn those_who_may_not_see_an_escalation_are_told_it_does_not_exist(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let id = opened(&svc, "INC-2026-000002").await;
    let mut stranger = svc.escalations("someone-else", &[Role::Responder, Role::IncidentOfficer]);
    for status in [
        stranger
            .get_escalation(pb::GetEscalationRequest {
                escalation_id: id.clone(),
                view: 0,
            })
            .await
            .unwrap_err(),
        stranger
            .acknowledge_escalation(ack(&id, "me too"))
            .await
            .unwrap_err(),
        stranger
            .list_escalation_timeline(pb::ListEscalationTimelineRequest {
                escalation_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        stranger
            .get_escalation(pb::GetEscalationRequest {
                escalation_id: Uuid::now_v7().to_string(),
                view: 0,
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::NotFound, "ESCALATION_NOT_FOUND")
        );
    }
    let listed = stranger
        .list_escalations(pb::ListEscalationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .escalations;
    assert!(listed.is_empty(), "a stranger lists nothing");

    // An advisor sees it, but is no nominee: nothing to acknowledge.
    let mut advisor = svc.escalations("advisor", &[Role::SecurityAdvisor]);
    advisor
        .get_escalation(pb::GetEscalationRequest {
            escalation_id: id.clone(),
            view: 0,
        })
        .await
        .unwrap();
    let err = advisor
        .acknowledge_escalation(ack(&id, "noted"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::PermissionDenied, "NOT_NOMINEE")
    );

    // A nominee who has left (deactivated) no longer acts for the organisation.
    let mut dir = svc.owner();
    let contacts = dir
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .contacts;
    let leaver = contacts
        .iter()
        .find(|c| c.token_subject == "nominee-2")
        .unwrap();
    let third = people(&mut dir, "Spare", 1).await.remove(0);
    let lists = dir
        .list_contact_lists(pb::ListContactListsRequest {})
        .await
        .unwrap()
        .into_inner()
        .lists;
    let hm = &lists[pb::ContactListKind::HighMedium as usize - 1];
    let mut members = hm.contact_ids.clone();
    members.push(third);
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::HighMedium as i32,
        contact_ids: members,
        revision: hm.revision,
    })
    .await
    .unwrap();
    dir.deactivate_contact(pb::DeactivateContactRequest {
        contact_id: leaver.id.clone(),
        revision: leaver.revision,
    })
    .await
    .unwrap();
    let err = svc
        .escalations("nominee-2", &[Role::Responder])
        .acknowledge_escalation(ack(&id, "from my old account"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::NotFound, "ESCALATION_NOT_FOUND")
    );

    let mut anonymous = pb::escalation_service_client::EscalationServiceClient::new(
        custos_testing::anonymous(svc.running.addr),
    );
    let err = anonymous
        .list_escalations(pb::ListEscalationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let bad = svc
        .escalations("nominee-1", &[Role::Responder])
        .acknowledge_escalation(ack("not-an-id", " "))
        .await
        .unwrap_err();
    let mut f = fields(&bad);
    f.sort();
    assert_eq!(f, ["escalation_id", "note"]);
}

async fn lists_filter_by_state_trigger_subject_overdue_and_mine(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let a = opened(&svc, "INC-2026-000003").await;
    let b = opened(&svc, "INC-2026-000004").await;
    // An overdue one: opened a day ago with the policy's one-hour deadline.
    let subject = Subject {
        kind: SubjectKind::Report,
        id: Uuid::now_v7(),
        reference: "SIR-2026-000009".into(),
        facts: Facts::default(),
        anonymous: false,
    };
    let mut tx = svc.db.begin().await.unwrap();
    let old = engine::open(
        &mut tx,
        Trigger::ServiceAffecting,
        &subject,
        DbTime::new(OffsetDateTime::now_utc() - Duration::days(1)),
    )
    .await
    .unwrap()
    .unwrap()
    .to_string();
    tx.commit().await.unwrap();
    svc.escalations("nominee-1", &[Role::Responder])
        .acknowledge_escalation(ack(&a, "done"))
        .await
        .unwrap();
    svc.escalations("nominee-2", &[Role::Responder])
        .acknowledge_escalation(ack(&a, "done"))
        .await
        .unwrap();

    let mut advisor = svc.escalations("advisor", &[Role::SecurityAdvisor]);
    let list = async |filter: pb::EscalationFilter| -> Vec<String> {
        let mut advisor = svc.escalations("advisor", &[Role::SecurityAdvisor]);
        let mut ids = Vec::new();
        let mut token = String::new();
        loop {
            let page = advisor
                .list_escalations(pb::ListEscalationsRequest {
                    filter: Some(filter.clone()),
                    page_size: 1,
                    page_token: token.clone(),
                    view: 0,
                })
                .await
                .unwrap()
                .into_inner();
            assert!(
                page.escalations
                    .iter()
                    .all(|e| e.tiers.iter().all(|t| t.nominees.is_empty())),
                "BASIC by default"
            );
            ids.extend(page.escalations.into_iter().map(|e| e.id));
            if page.next_page_token.is_empty() {
                return ids;
            }
            token = page.next_page_token;
        }
    };
    assert_eq!(
        list(pb::EscalationFilter::default()).await,
        [b.clone(), a.clone(), old.clone()],
        "newest first"
    );
    assert_eq!(
        list(pb::EscalationFilter {
            states: vec![pb::escalation::State::Satisfied as i32],
            ..Default::default()
        })
        .await,
        vec![a.clone()]
    );
    assert_eq!(
        list(pb::EscalationFilter {
            triggers: vec![pb::EscalationTrigger::ServiceAffecting as i32],
            ..Default::default()
        })
        .await,
        vec![old.clone()]
    );
    assert_eq!(
        list(pb::EscalationFilter {
            subject_id: subject.id.to_string(),
            ..Default::default()
        })
        .await,
        vec![old.clone()]
    );
    assert_eq!(
        list(pb::EscalationFilter {
            overdue: true,
            ..Default::default()
        })
        .await,
        vec![old.clone()]
    );
    assert!(
        list(pb::EscalationFilter {
            mine: true,
            ..Default::default()
        })
        .await
        .is_empty(),
        "the advisor is nobody's nominee"
    );
    let mine = svc
        .escalations("nominee-2", &[Role::Responder])
        .list_escalations(pb::ListEscalationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .escalations;
    assert_eq!(
        mine.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        [b, a],
        "a nominee sees theirs only"
    );

    let err = advisor
        .list_escalations(pb::ListEscalationsRequest {
            filter: Some(pb::EscalationFilter {
                states: vec![9],
                triggers: vec![0],
                ..Default::default()
            }),
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut f = fields(&err);
    f.sort();
    assert_eq!(f, ["filter.states[0]", "filter.triggers[0]", "page_size"]);
}

on_both_backends!(
    every_nominee_acknowledges_once_and_a_retry_gets_the_first_back,
    those_who_may_not_see_an_escalation_are_told_it_does_not_exist,
    lists_filter_by_state_trigger_subject_overdue_and_mine,
);
