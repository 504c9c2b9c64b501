//! Need to know (14.2.2) end to end: an incident is visible to advisors, services and the
//! people on its access list only; for anyone else it does not exist, exactly as an id
//! never issued. Only the officer and advisors change it; reads of a personal-data
//! incident are in the audit trail before they are answered; access events count.

use custos_kit::{auth::Role, error::status_reason};
use custos_proto::classification::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::{
    common::*,
    incidents::{events, get, raise},
};

const RESPONDER: &[Role] = &[Role::Responder];
const OFFICER: &[Role] = &[Role::IncidentOfficer];
const ADVISOR: &[Role] = &[Role::SecurityAdvisor];

fn reason(status: &tonic::Status) -> String {
    status_reason(status).map(|(r, _)| r).unwrap_or_default()
}

/// What a caller is told of an incident: code, reason and message.
fn told(status: tonic::Status) -> (Code, String, String) {
    (status.code(), reason(&status), status.message().to_owned())
}

async fn visible_ids(c: &TestClassification, subject: &str, roles: &[Role]) -> Vec<String> {
    c.incidents(subject, roles)
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .incidents
        .into_iter()
        .map(|i| i.id)
        .collect()
}

async fn grant(
    c: &TestClassification,
    by: (&str, &[Role]),
    id: &str,
    subject: &str,
) -> Result<pb::IncidentAccess, tonic::Status> {
    Ok(c.incidents(by.0, by.1)
        .grant_incident_access(pb::GrantIncidentAccessRequest {
            incident_id: id.into(),
            subject: subject.into(),
            reason: "on the response team".into(),
            idempotency_key: key(),
        })
        .await?
        .into_inner()
        .access
        .unwrap())
}

async fn revoke(
    c: &TestClassification,
    by: (&str, &[Role]),
    id: &str,
    subject: &str,
) -> Result<bool, tonic::Status> {
    Ok(c.incidents(by.0, by.1)
        .revoke_incident_access(pb::RevokeIncidentAccessRequest {
            incident_id: id.into(),
            subject: subject.into(),
            reason: "left the team".into(),
            idempotency_key: key(),
        })
        .await?
        .into_inner()
        .revoked)
}

async fn access_list(c: &TestClassification, id: &str) -> Vec<(String, bool)> {
    c.incidents("sam", ADVISOR)
        .list_incident_access(pb::ListIncidentAccessRequest {
            incident_id: id.into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("list access")
        .into_inner()
        .access
        .into_iter()
        .map(|a| (a.subject, a.officer))
        .collect()
}

async fn only_those_who_need_to_know_see_an_incident(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, true).await;
    let other = raise(&c, 2, false).await;
    let id = incident.id.as_str();

    // A stranger is told exactly what they would be told of an id never issued.
    let never = uuid::Uuid::now_v7().to_string();
    let unknown = told(get(&c, "rita", RESPONDER, &never).await.unwrap_err());
    assert_eq!(unknown.1, "INCIDENT_NOT_FOUND");
    assert_eq!(
        told(get(&c, "rita", RESPONDER, id).await.unwrap_err()),
        unknown
    );
    assert_eq!(
        told(
            get(&c, "rita", RESPONDER, &incident.reference)
                .await
                .unwrap_err()
        ),
        unknown
    );
    let add = |who: &str| pb::AddIncidentActionRequest {
        incident_id: id.into(),
        kind: pb::IncidentActionKind::Containment as i32,
        detail: format!("{who} isolated the switch port"),
        idempotency_key: key(),
    };
    let err = c
        .incidents("rita", RESPONDER)
        .add_incident_action(add("rita"))
        .await
        .unwrap_err();
    assert_eq!(told(err), unknown);
    let err = grant(&c, ("rita", RESPONDER), id, "rita")
        .await
        .unwrap_err();
    assert_eq!(told(err), unknown);
    assert!(visible_ids(&c, "rita", RESPONDER).await.is_empty());
    assert_eq!(
        visible_ids(&c, "sam", ADVISOR).await,
        [other.id.clone(), incident.id.clone()]
    );
    assert_eq!(visible_ids(&c, "svc", &[Role::Service]).await.len(), 2);

    // The officer joins the access list with the assignment.
    let assigned = c
        .incidents("sam", ADVISOR)
        .assign_incident_officer(pb::AssignIncidentOfficerRequest {
            incident_id: id.into(),
            revision: incident.revision,
            officer: "olga".into(),
            note: "on call this week".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!((assigned.officer.as_str(), assigned.revision), ("olga", 2));
    assert_eq!(get(&c, "olga", OFFICER, id).await.unwrap().officer, "olga");
    assert_eq!(access_list(&c, id).await, [("olga".to_owned(), true)]);

    // The officer gives access; those on the list read and add to the log, no more.
    assert_eq!(
        grant(&c, ("olga", OFFICER), id, "rita")
            .await
            .unwrap()
            .subject,
        "rita"
    );
    assert_eq!(
        grant(&c, ("olga", OFFICER), id, "rita")
            .await
            .unwrap()
            .granted_by,
        "olga"
    );
    assert_eq!(
        visible_ids(&c, "rita", RESPONDER).await,
        vec![incident.id.clone()]
    );
    c.incidents("rita", RESPONDER)
        .add_incident_action(add("rita"))
        .await
        .expect("rita acts");
    let err = c
        .incidents("rita", RESPONDER)
        .investigate_incident(pb::InvestigateIncidentRequest {
            incident_id: id.into(),
            revision: 2,
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::PermissionDenied, "NOT_INCIDENT_OFFICER".into())
    );
    let err = grant(&c, ("rita", RESPONDER), id, "ron").await.unwrap_err();
    assert_eq!(reason(&err), "NOT_INCIDENT_OFFICER");

    // The officer's access goes only with the office; others' on request, once.
    let err = revoke(&c, ("sam", ADVISOR), id, "olga").await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "OFFICER_ACCESS".into())
    );
    assert!(revoke(&c, ("olga", OFFICER), id, "rita").await.unwrap());
    assert!(!revoke(&c, ("olga", OFFICER), id, "rita").await.unwrap());
    assert_eq!(
        told(get(&c, "rita", RESPONDER, id).await.unwrap_err()),
        unknown
    );
    assert!(visible_ids(&c, "rita", RESPONDER).await.is_empty());

    // Each change of the list is one event, in sequence.
    let granted = events::<pb::IncidentAccessGranted>(&c.db, id).await;
    let revoked = events::<pb::IncidentAccessRevoked>(&c.db, id).await;
    let granted: Vec<(&str, i32)> = granted
        .iter()
        .map(|e| (e.subject.as_str(), e.access_sequence))
        .collect();
    let revoked: Vec<(&str, i32)> = revoked
        .iter()
        .map(|e| (e.subject.as_str(), e.access_sequence))
        .collect();
    assert_eq!(granted, [("olga", 1), ("rita", 2)]);
    assert_eq!(revoked, [("rita", 3)]);
    let assigned = events::<pb::IncidentOfficerAssigned>(&c.db, id).await;
    assert_eq!(assigned.len(), 1);
    assert_eq!(
        (assigned[0].officer.as_str(), assigned[0].revision),
        ("olga", 2)
    );
}

async fn personal_data_reads_are_audited_first(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let personal = raise(&c, 1, true).await;
    let plain = raise(&c, 2, false).await;
    assert!(personal.flags.as_ref().unwrap().personal_data);
    let audit = |id: String| {
        let db = c.db.clone();
        async move {
            custos_kit::audit::entries(db.read().await.unwrap(), &id)
                .await
                .unwrap()
        }
    };
    // `raise` read both as the advisor.
    assert_eq!(
        audit(personal.id.clone()).await,
        [("sam".to_owned(), "incident.read".to_owned())]
    );
    assert!(audit(plain.id.clone()).await.is_empty());
    grant(&c, ("sam", ADVISOR), &personal.id, "rita")
        .await
        .unwrap();
    get(&c, "rita", RESPONDER, &personal.id).await.unwrap();
    visible_ids(&c, "rita", RESPONDER).await;
    visible_ids(&c, "sam", ADVISOR).await;
    c.incidents("rita", RESPONDER)
        .list_incident_actions(pb::ListIncidentActionsRequest {
            incident_id: personal.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let entries: Vec<(String, String)> = audit(personal.id.clone()).await;
    let entries: Vec<(&str, &str)> = entries
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("sam", "incident.read"),
            ("rita", "incident.read"),
            ("rita", "incident.list"),
            ("sam", "incident.list"),
            ("rita", "incident.actions.read"),
        ]
    );
    assert!(
        audit(plain.id.clone()).await.is_empty(),
        "no personal data, no audit"
    );
    // A stranger's failed read reads nothing, so records nothing.
    get(&c, "ron", RESPONDER, &personal.id).await.unwrap_err();
    assert_eq!(audit(personal.id.clone()).await.len(), 5);

    // With the audit trail gone, a personal-data incident is not returned at all.
    let mut tx = c.db.begin().await.unwrap();
    custos_kit::with_conn!(&mut tx, conn => {
        sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_gone")
            .execute(&mut *conn)
            .await
            .unwrap();
    });
    tx.commit().await.unwrap();
    let err = get(&c, "rita", RESPONDER, &personal.id).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::Unavailable | Code::Internal),
        "{err:?}"
    );
    get(&c, "rita", RESPONDER, &plain.id).await.unwrap_err();
    get(&c, "sam", ADVISOR, &plain.id)
        .await
        .expect("no personal data: nothing to audit");
}

on_both_backends!(
    only_those_who_need_to_know_see_an_incident,
    personal_data_reads_are_audited_first,
);
