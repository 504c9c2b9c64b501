//! Changes of an incident under pressure: callers who may not see it are told the same as
//! for an id never issued by every method; a retry is answered (and audited) as the first
//! call was, even after the list changed; closed incidents stay closed; only an advisor
//! stops the audit of personal data; concurrent changes are decided one after the other.

use custos_classification::store::{self, IncidentKey};
use custos_kit::{auth::Role, error::status_reason};
use custos_proto::classification::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::{
    common::*,
    incidents::{events, get, log, raise},
};

const RESPONDER: &[Role] = &[Role::Responder];
const ADVISOR: &[Role] = &[Role::SecurityAdvisor];

fn reason(status: &tonic::Status) -> String {
    status_reason(status).map(|(r, _)| r).unwrap_or_default()
}

/// Everything a caller is told: code, message and details.
fn told(status: &tonic::Status) -> (Code, String, Vec<u8>) {
    (
        status.code(),
        status.message().to_owned(),
        status.details().to_vec(),
    )
}

/// Every method of the register called by `rita` (a responder) on `id`.
async fn as_stranger(c: &TestClassification, id: &str) -> Vec<tonic::Status> {
    let mut r = c.incidents("rita", RESPONDER);
    let id = || id.to_owned();
    let k = key;
    vec![
        r.get_incident(pb::GetIncidentRequest { incident_id: id() })
            .await
            .unwrap_err(),
        r.update_incident(pb::UpdateIncidentRequest {
            incident_id: id(),
            revision: 1,
            incident: Some(pb::Incident::default()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["summary".into()],
            }),
            reason: "x".into(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.assign_incident_officer(pb::AssignIncidentOfficerRequest {
            incident_id: id(),
            revision: 1,
            officer: "rita".into(),
            note: String::new(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.investigate_incident(pb::InvestigateIncidentRequest {
            incident_id: id(),
            revision: 1,
            note: String::new(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.contain_incident(pb::ContainIncidentRequest {
            incident_id: id(),
            revision: 1,
            note: String::new(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.recover_incident(pb::RecoverIncidentRequest {
            incident_id: id(),
            revision: 1,
            note: String::new(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.resolve_incident(pb::ResolveIncidentRequest {
            incident_id: id(),
            revision: 1,
            note: String::new(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.grant_incident_access(pb::GrantIncidentAccessRequest {
            incident_id: id(),
            subject: "rita".into(),
            reason: "x".into(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.revoke_incident_access(pb::RevokeIncidentAccessRequest {
            incident_id: id(),
            subject: "olga".into(),
            reason: "x".into(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.list_incident_access(pb::ListIncidentAccessRequest {
            incident_id: id(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        r.add_incident_action(pb::AddIncidentActionRequest {
            incident_id: id(),
            kind: pb::IncidentActionKind::Recovery as i32,
            detail: "x".into(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.list_incident_actions(pb::ListIncidentActionsRequest {
            incident_id: id(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        r.record_incident_review(pb::RecordIncidentReviewRequest {
            incident_id: id(),
            revision: 1,
            root_cause: "x".into(),
            lessons: "x".into(),
            idempotency_key: k(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        r.close_incident(pb::CloseIncidentRequest {
            incident_id: id(),
            revision: 1,
            note: String::new(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.reassess_incident_impact(pb::ReassessIncidentImpactRequest {
            incident_id: id(),
            revision: 1,
            figures: None,
            choices: crate::assess::choices("minor", None),
            reason: "x".into(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.list_incident_impacts(pb::ListIncidentImpactsRequest {
            incident_id: id(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        r.record_breach_awareness(pb::RecordBreachAwarenessRequest {
            incident_id: id(),
            revision: 1,
            aware_at: Some(custos_kit::time_fmt::to_timestamp(
                time::OffsetDateTime::now_utc(),
            )),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.decide_breach_notification(pb::DecideBreachNotificationRequest {
            incident_id: id(),
            revision: 1,
            decision: pb::BreachDecision::Notify as i32,
            reason: "x".into(),
            regulator_reference: String::new(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.add_incident_cost(pb::AddIncidentCostRequest {
            incident_id: id(),
            category: "other".into(),
            amount: Some(custos_proto::google::r#type::Money {
                currency_code: "GBP".into(),
                units: 1,
                nanos: 0,
            }),
            description: "x".into(),
            idempotency_key: k(),
        })
        .await
        .unwrap_err(),
        r.list_incident_costs(pb::ListIncidentCostsRequest {
            incident_id: id(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
    ]
}

async fn strangers_are_told_nothing_by_any_method(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, true).await;
    let never = uuid::Uuid::now_v7().to_string();
    let hidden = as_stranger(&c, &incident.id).await;
    let missing = as_stranger(&c, &never).await;
    assert_eq!(hidden.len(), 20);
    for (h, m) in hidden.iter().zip(&missing) {
        assert_eq!(h.code(), Code::NotFound, "{h:?}");
        assert_eq!(reason(h), "INCIDENT_NOT_FOUND");
        assert_eq!(told(h), told(m));
    }
    // Nothing they tried left a trace.
    assert_eq!(log(&c, &incident.id).await.len(), 1);
    assert_eq!(
        get(&c, "sam", ADVISOR, &incident.id)
            .await
            .unwrap()
            .revision,
        1
    );
}

async fn retries_are_answered_as_first_and_audited(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, true).await;
    let mut sam = c.incidents("sam", ADVISOR);
    let grant = |k: &str| pb::GrantIncidentAccessRequest {
        incident_id: incident.id.clone(),
        subject: "rita".into(),
        reason: "on the team".into(),
        idempotency_key: k.into(),
    };
    let k = key();
    let first = sam
        .grant_incident_access(grant(&k))
        .await
        .unwrap()
        .into_inner();
    sam.revoke_incident_access(pb::RevokeIncidentAccessRequest {
        incident_id: incident.reference.clone(),
        subject: "rita".into(),
        reason: "left".into(),
        idempotency_key: key(),
    })
    .await
    .unwrap();
    // The grant retried after the revoke (naming the incident by reference this time) is
    // the first grant's answer, and gives nothing again.
    let retried = sam
        .grant_incident_access(pb::GrantIncidentAccessRequest {
            incident_id: incident.reference.clone(),
            ..grant(&k)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, first);
    get(&c, "rita", RESPONDER, &incident.id).await.unwrap_err();
    assert_eq!(
        events::<pb::IncidentAccessGranted>(&c.db, &incident.id)
            .await
            .len(),
        1
    );

    // A retried change on a personal-data incident returns it: that is a read, audited.
    let act = pb::AddIncidentActionRequest {
        incident_id: incident.id.clone(),
        kind: pb::IncidentActionKind::Identification as i32,
        detail: "USB stick lost on the bus".into(),
        idempotency_key: key(),
    };
    let once = sam
        .add_incident_action(act.clone())
        .await
        .unwrap()
        .into_inner();
    let twice = sam.add_incident_action(act).await.unwrap().into_inner();
    assert_eq!(once, twice);
    let entries = custos_kit::audit::entries(c.db.read().await.unwrap(), &incident.id)
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "incident.read",
            "incident.read",
            "incident.action",
            "incident.read"
        ],
        "raise's read, the replayed grant, the action, its replay"
    );
}

async fn closed_stays_closed_and_only_advisors_stop_the_audit(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, true).await;
    let mut sam = c.incidents("sam", ADVISOR);
    let assign = |officer: &str, revision: i32| pb::AssignIncidentOfficerRequest {
        incident_id: incident.id.clone(),
        revision,
        officer: officer.into(),
        note: String::new(),
        idempotency_key: key(),
    };
    sam.assign_incident_officer(assign("olga", 1))
        .await
        .unwrap();
    // The officer hands over; she stays on the list until revoked.
    let mut olga = c.incidents("olga", &[Role::IncidentOfficer]);
    let handed = olga
        .assign_incident_officer(assign("otto", 2))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(handed.officer, "otto");
    get(&c, "olga", &[Role::IncidentOfficer], &incident.id)
        .await
        .expect("still listed");

    let clear = |revision: i32, flags: pb::IncidentFlags, path: &str| pb::UpdateIncidentRequest {
        incident_id: incident.id.clone(),
        revision,
        incident: Some(pb::Incident {
            flags: Some(flags),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![path.into()],
        }),
        reason: "no personal data after all".into(),
        idempotency_key: key(),
    };
    let mut otto = c.incidents("otto", &[Role::IncidentOfficer]);
    let err = otto
        .update_incident(clear(
            3,
            pb::IncidentFlags::default(),
            "flags.personal_data",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::PermissionDenied, "ADVISOR_REQUIRED".into())
    );
    let services = pb::IncidentFlags {
        business_services: vec!["email".into()],
        ..Default::default()
    };
    let err = otto
        .update_incident(clear(3, services, "flags.business_services"))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "services named, not service affecting"
    );
    let cleared = sam
        .update_incident(clear(
            3,
            pb::IncidentFlags::default(),
            "flags.personal_data",
        ))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert!(!cleared.flags.unwrap().personal_data);

    // Closed (as CloseIncident will leave it): nothing changes but who may read it.
    let mut tx = c.db.begin().await.unwrap();
    let mut row = store::hold_incident(&mut tx, &IncidentKey::Id(incident.id.parse().unwrap()))
        .await
        .unwrap()
        .unwrap();
    row.state = custos_classification::incident::IncidentState::Closed;
    assert!(store::save(&mut tx, &row).await.unwrap());
    tx.commit().await.unwrap();
    let err = sam
        .investigate_incident(pb::InvestigateIncidentRequest {
            incident_id: incident.id.clone(),
            revision: 5,
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "INCIDENT_CLOSED".into())
    );
    let err = sam
        .add_incident_action(pb::AddIncidentActionRequest {
            incident_id: incident.id.clone(),
            kind: pb::IncidentActionKind::Recovery as i32,
            detail: "late".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INCIDENT_CLOSED");
    sam.grant_incident_access(pb::GrantIncidentAccessRequest {
        incident_id: incident.id.clone(),
        subject: "auditor".into(),
        reason: "internal audit review".into(),
        idempotency_key: key(),
    })
    .await
    .expect("access to the record after closing");
}

/// Sessions of this database waiting for a lock on the register (PostgreSQL).
async fn waiting_on_incidents(c: &TestClassification) -> i64 {
    let mut conn = c.db.read().await.unwrap();
    custos_kit::with_conn!(&mut conn, pg => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query ILIKE '%incidents%'",
        )
        .fetch_one(&mut *pg)
        .await
        .unwrap()
    })
}

async fn concurrent_changes_are_decided_one_after_the_other(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, false).await;
    // On PostgreSQL the incident is held while the moves arrive, so that all four have
    // read it before any is decided. (SQLite has one writer: they queue at BEGIN.)
    let blocker = if backend == Backend::Postgres {
        let mut tx = c.db.begin().await.unwrap();
        store::hold_incident(&mut tx, &IncidentKey::Id(incident.id.parse().unwrap()))
            .await
            .unwrap();
        Some(tx)
    } else {
        None
    };
    let moves = (0..4).map(|_| {
        let mut sam = c.incidents("sam", ADVISOR);
        let id = incident.id.clone();
        tokio::spawn(async move {
            sam.investigate_incident(pb::InvestigateIncidentRequest {
                incident_id: id,
                revision: 1,
                note: String::new(),
                idempotency_key: key(),
            })
            .await
        })
    });
    let moves: Vec<_> = moves.collect();
    if let Some(tx) = blocker {
        eventually("the four moves wait for the incident", async || {
            waiting_on_incidents(&c).await >= 4
        })
        .await;
        tx.commit().await.unwrap();
    }
    let mut outcomes = Vec::new();
    for m in moves {
        outcomes.push(match m.await.unwrap() {
            Ok(_) => "moved".to_owned(),
            Err(e) => reason(&e),
        });
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "INCIDENT_CHANGED",
            "INCIDENT_CHANGED",
            "INCIDENT_CHANGED",
            "moved"
        ]
    );

    let grants = (0..8).map(|i| {
        let mut sam = c.incidents("sam", ADVISOR);
        let id = incident.id.clone();
        tokio::spawn(async move {
            sam.grant_incident_access(pb::GrantIncidentAccessRequest {
                incident_id: id,
                subject: format!("responder-{i}"),
                reason: "on the team".into(),
                idempotency_key: key(),
            })
            .await
            .unwrap();
        })
    });
    let actions = (0..8).map(|i| {
        let mut sam = c.incidents("sam", ADVISOR);
        let id = incident.id.clone();
        tokio::spawn(async move {
            sam.add_incident_action(pb::AddIncidentActionRequest {
                incident_id: id,
                kind: pb::IncidentActionKind::Communication as i32,
                detail: format!("told department {i}"),
                idempotency_key: key(),
            })
            .await
            .unwrap();
        })
    });
    for t in grants.chain(actions).collect::<Vec<_>>() {
        t.await.unwrap();
    }
    let mut sequences: Vec<i32> = events::<pb::IncidentAccessGranted>(&c.db, &incident.id)
        .await
        .into_iter()
        .map(|e| e.access_sequence)
        .collect();
    sequences.sort();
    assert_eq!(sequences, (1..=8).collect::<Vec<_>>());
    let logged: Vec<i32> = log(&c, &incident.id)
        .await
        .iter()
        .map(|a| a.sequence)
        .collect();
    assert_eq!(
        logged,
        (1..=18).collect::<Vec<_>>(),
        "declared, moved, 8 grants, 8 actions"
    );
}

on_both_backends!(
    strangers_are_told_nothing_by_any_method,
    retries_are_answered_as_first_and_audited,
    closed_stays_closed_and_only_advisors_stop_the_audit,
    concurrent_changes_are_decided_one_after_the_other,
);
