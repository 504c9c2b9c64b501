//! The classification consumer's rules, applied directly to events as the feed delivers
//! them: flags and levels open escalations when they turn on or rise, and an event older
//! than what was already applied (replayed, or parked and applied late) changes nothing.

use custos_escalation::feeds::ClassificationEvents;
use custos_kit::consumer::EventHandler;
use custos_proto::{
    classification::v1 as cl, common::v1::Event, escalation::v1 as pb, prost_types::Any,
};
use custos_testing::{Backend, on_both_backends};
use uuid::Uuid;

use crate::common::TestEscalation;

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

fn flags(service: bool, personal: bool) -> Option<cl::IncidentFlags> {
    Some(cl::IncidentFlags {
        service_affecting: service,
        business_services: if service {
            vec!["payroll".into()]
        } else {
            vec![]
        },
        personal_data: personal,
        ..Default::default()
    })
}

async fn apply(svc: &TestEscalation, e: Event) {
    let mut tx = svc.db.begin().await.unwrap();
    ClassificationEvents.handle(&mut tx, &e).await.unwrap();
    tx.commit().await.unwrap();
}

async fn triggers(svc: &TestEscalation, incident: Uuid) -> Vec<i32> {
    let mut t: Vec<i32> = svc
        .escalations("advisor", &[custos_kit::auth::Role::SecurityAdvisor])
        .list_escalations(pb::ListEscalationsRequest {
            filter: Some(pb::EscalationFilter {
                subject_id: incident.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .escalations
        .iter()
        .map(|e| e.trigger)
        .collect();
    t.sort();
    t
}

async fn an_event_older_than_what_was_applied_changes_nothing(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let incident = Uuid::now_v7();
    use pb::EscalationTrigger as T;
    apply(
        &svc,
        event(
            incident,
            &cl::IncidentDeclared {
                category: "malware".into(),
                overall_level: cl::ImpactLevel::Low as i32,
                report_id: Uuid::now_v7().to_string(),
                declared_at: None,
                flags: flags(false, false),
            },
        ),
    )
    .await;
    assert_eq!(triggers(&svc, incident).await, [T::IncidentLow as i32]);
    // Revision 3 makes it service affecting; revision 2 (personal data), applied after
    // it, is older news and opens nothing.
    apply(
        &svc,
        event(
            incident,
            &cl::IncidentFlagsChanged {
                flags: flags(true, false),
                revision: 3,
                changed_at: None,
                overall_level: cl::ImpactLevel::Low as i32,
            },
        ),
    )
    .await;
    apply(
        &svc,
        event(
            incident,
            &cl::IncidentFlagsChanged {
                flags: flags(false, true),
                revision: 2,
                changed_at: None,
                overall_level: cl::ImpactLevel::Low as i32,
            },
        ),
    )
    .await;
    assert_eq!(
        triggers(&svc, incident).await,
        [T::IncidentLow as i32, T::ServiceAffecting as i32]
    );
    // Raised to high at revision 5; a late raise to medium (revision 4) changes nothing.
    apply(
        &svc,
        event(
            incident,
            &cl::IncidentLevelChanged {
                from: cl::ImpactLevel::Low as i32,
                to: cl::ImpactLevel::High as i32,
                revision: 5,
                changed_at: None,
            },
        ),
    )
    .await;
    apply(
        &svc,
        event(
            incident,
            &cl::IncidentLevelChanged {
                from: cl::ImpactLevel::Low as i32,
                to: cl::ImpactLevel::Medium as i32,
                revision: 4,
                changed_at: None,
            },
        ),
    )
    .await;
    assert_eq!(
        triggers(&svc, incident).await,
        [
            T::IncidentLow as i32,
            T::IncidentHigh as i32,
            T::ServiceAffecting as i32
        ]
    );
    // Evidence at revision 6: its flags change and its own event share the revision.
    apply(
        &svc,
        event(
            incident,
            &cl::IncidentFlagsChanged {
                flags: Some(cl::IncidentFlags {
                    evidence_required: true,
                    ..flags(true, false).unwrap()
                }),
                revision: 6,
                changed_at: None,
                overall_level: cl::ImpactLevel::High as i32,
            },
        ),
    )
    .await;
    apply(
        &svc,
        event(
            incident,
            &cl::IncidentEvidenceRequired {
                revision: 6,
                flagged_at: None,
            },
        ),
    )
    .await;
    assert_eq!(
        triggers(&svc, incident).await,
        [
            T::IncidentLow as i32,
            T::IncidentHigh as i32,
            T::ServiceAffecting as i32,
            T::EvidenceRequired as i32
        ],
        "evidence opens once"
    );
}

/// Evidence registered for an incident (custody's feed) tells internal audit through the
/// incident's EVIDENCE_REQUIRED escalation, once while it is open; a closed incident's
/// evidence opens nothing.
async fn evidence_registered_tells_internal_audit_once(backend: Backend) {
    use custos_escalation::feeds::CustodyEvents;
    use custos_proto::custody::v1 as cu;
    let svc = TestEscalation::start(backend).await;
    let incident = Uuid::now_v7();
    let registered = |item: Uuid| Event {
        event_id: Uuid::now_v7().to_string(),
        event_type: <cu::EvidenceRegistered as prost::Name>::full_name(),
        aggregate_id: item.to_string(),
        aggregate_reference: "EVD-2026-000001".into(),
        payload: Some(
            Any::from_msg(&cu::EvidenceRegistered {
                incident_id: incident.to_string(),
                incident_reference: "INC-2026-000500".into(),
                kind: cu::EvidenceKind::File as i32,
                registered_at: None,
            })
            .unwrap(),
        ),
        ..Default::default()
    };
    for _ in 0..2 {
        let mut tx = svc.db.begin().await.unwrap();
        CustodyEvents
            .handle(&mut tx, &registered(Uuid::now_v7()))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(
        triggers(&svc, incident).await,
        [pb::EscalationTrigger::EvidenceRequired as i32]
    );
    // Other events of custody's feed are not for escalation.
    let mut tx = svc.db.begin().await.unwrap();
    let mut other = registered(Uuid::now_v7());
    other.event_type = "custos.custody.v1.CustodyCheckpointSigned".into();
    CustodyEvents.handle(&mut tx, &other).await.unwrap();
    tx.commit().await.unwrap();

    // Closed: evidence registered afterwards tells nobody.
    let closed = Uuid::now_v7();
    apply(
        &svc,
        event(
            closed,
            &cl::IncidentStateChanged {
                from: cl::incident::State::Resolved as i32,
                to: cl::incident::State::Closed as i32,
                revision: 9,
                changed_at: None,
            },
        ),
    )
    .await;
    let mut late = registered(Uuid::now_v7());
    let mut p: cu::EvidenceRegistered = late.payload.as_ref().unwrap().to_msg().unwrap();
    p.incident_id = closed.to_string();
    late.payload = Some(Any::from_msg(&p).unwrap());
    let mut tx = svc.db.begin().await.unwrap();
    CustodyEvents.handle(&mut tx, &late).await.unwrap();
    tx.commit().await.unwrap();
    assert!(triggers(&svc, closed).await.is_empty());
}

on_both_backends!(
    an_event_older_than_what_was_applied_changes_nothing,
    evidence_registered_tells_internal_audit_once,
);
