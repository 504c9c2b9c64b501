//! The copy of classification's incidents and access lists, applied from the feed's
//! events: a grant lets someone see the incident's evidence, a revoke hides it, the
//! officer may dispose, the evidence flag shows on items, and an event older than what
//! was applied (replayed, or parked and applied late) changes nothing.

use custos_evidence_custody::feeds::ClassificationEvents;
use custos_kit::{auth::Role, consumer::EventHandler};
use custos_proto::{
    classification::v1 as cl, common::v1::Event, custody::v1 as pb, prost_types::Any,
};
use custos_testing::{Backend, on_both_backends};
use uuid::Uuid;

use crate::common::{TestCustody, reason, register};

fn event<M: prost::Name>(incident: Uuid, payload: &M) -> Event {
    Event {
        event_id: Uuid::now_v7().to_string(),
        event_type: M::full_name(),
        aggregate_id: incident.to_string(),
        aggregate_reference: "INC-2026-000500".into(),
        payload: Some(Any::from_msg(payload).unwrap()),
        ..Default::default()
    }
}

async fn apply(svc: &TestCustody, e: &Event) {
    let mut tx = svc.db.begin().await.unwrap();
    ClassificationEvents.handle(&mut tx, e).await.unwrap();
    tx.commit().await.unwrap();
}

fn grant(subject: &str, sequence: i32) -> cl::IncidentAccessGranted {
    cl::IncidentAccessGranted {
        subject: subject.into(),
        access_sequence: sequence,
        granted_at: None,
    }
}

fn revoke(subject: &str, sequence: i32) -> cl::IncidentAccessRevoked {
    cl::IncidentAccessRevoked {
        subject: subject.into(),
        access_sequence: sequence,
        revoked_at: None,
    }
}

async fn sees(svc: &TestCustody, subject: &str, item: &str) -> bool {
    match svc
        .client(subject, &[Role::Responder])
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item.into(),
            ..Default::default()
        })
        .await
    {
        Ok(_) => true,
        Err(s) => {
            assert_eq!(reason(&s), "ITEM_NOT_FOUND");
            false
        }
    }
}

async fn access_lists_follow_classification_and_late_events_change_nothing(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    let incident = Uuid::now_v7();
    apply(
        &svc,
        &event(
            incident,
            &cl::IncidentDeclared {
                category: "malware".into(),
                ..Default::default()
            },
        ),
    )
    .await;
    let granted = event(incident, &grant("rhys", 1));
    apply(&svc, &granted).await;
    let mut rhys = svc.client("rhys", &[Role::Responder]);
    let item = register(&mut rhys, "INC-2026-000500").await;
    assert!(!item.incident_evidence_required);
    assert!(!sees(&svc, "sam", &item.id).await);

    apply(&svc, &event(incident, &grant("sam", 2))).await;
    assert!(sees(&svc, "sam", &item.id).await);
    apply(&svc, &event(incident, &revoke("sam", 3))).await;
    assert!(!sees(&svc, "sam", &item.id).await);
    // The grant redelivered, or parked and applied late, does not bring sam back.
    apply(&svc, &event(incident, &grant("sam", 2))).await;
    assert!(!sees(&svc, "sam", &item.id).await);
    apply(&svc, &granted).await;
    assert!(sees(&svc, "rhys", &item.id).await);

    // The evidence flag, newest revision wins.
    apply(
        &svc,
        &event(
            incident,
            &cl::IncidentEvidenceRequired {
                revision: 4,
                flagged_at: None,
            },
        ),
    )
    .await;
    let flagged = |svc: &TestCustody| {
        let mut c = svc.client("rhys", &[Role::Responder]);
        let id = item.id.clone();
        async move {
            c.get_evidence(pb::GetEvidenceRequest {
                item_id: id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .item
            .unwrap()
            .incident_evidence_required
        }
    };
    assert!(flagged(&svc).await);
    apply(
        &svc,
        &event(
            incident,
            &cl::IncidentFlagsChanged {
                flags: Some(cl::IncidentFlags::default()),
                revision: 3,
                ..Default::default()
            },
        ),
    )
    .await;
    assert!(flagged(&svc).await, "an older revision changes nothing");

    // The officer may place a hold; before being assigned, rhys may not.
    let hold = |revision| pb::PlaceLegalHoldRequest {
        item_id: item.id.clone(),
        revision,
        reason: "matter 1".into(),
        idempotency_key: Uuid::new_v4().to_string(),
    };
    let denied = rhys.place_legal_hold(hold(1)).await.unwrap_err();
    assert_eq!(reason(&denied), "NOT_AUTHORISED");
    apply(
        &svc,
        &event(
            incident,
            &cl::IncidentOfficerAssigned {
                officer: "rhys".into(),
                revision: 5,
                ..Default::default()
            },
        ),
    )
    .await;
    rhys.place_legal_hold(hold(1)).await.unwrap();
    // Events this consumer does not handle are ignored.
    apply(&svc, &event(incident, &cl::IncidentLevelChanged::default())).await;

    // A declaration applied after an access event (parked, then replayed) still gives
    // the incident its evidence flag.
    let late = Uuid::now_v7();
    let mut granted = event(late, &grant("rhys", 1));
    granted.aggregate_reference = "INC-2026-000501".into();
    apply(&svc, &granted).await;
    let mut declared = event(
        late,
        &cl::IncidentDeclared {
            flags: Some(cl::IncidentFlags {
                evidence_required: true,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    declared.aggregate_reference = "INC-2026-000501".into();
    apply(&svc, &declared).await;
    let item = register(&mut rhys, "INC-2026-000501").await;
    assert!(item.incident_evidence_required);
}

on_both_backends!(access_lists_follow_classification_and_late_events_change_nothing);
