//! The register's bad-input and auth matrix: every bad field is named, every call needs
//! a token, and callers who may see an incident but not change it are told so.

use custos_kit::{auth::Role, error::status_violations};
use custos_proto::classification::v1 as pb;
use tonic::Code;

use crate::{common::*, incidents::raise};

fn fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status_violations(status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_their_fields() {
    let c = TestClassification::start(custos_testing::Backend::Sqlite).await;
    let incident = raise(&c, 1, false).await;
    let mut sam = c.incidents("sam", &[Role::SecurityAdvisor]);

    let err = sam
        .get_incident(pb::GetIncidentRequest {
            incident_id: "  ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["incident_id"]);
    let err = sam
        .get_incident(pb::GetIncidentRequest {
            incident_id: "INC 2026 1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["incident_id"]);

    let err = sam
        .list_incidents(pb::ListIncidentsRequest {
            filter: Some(pb::IncidentFilter {
                states: vec![99],
                levels: vec![0],
                categories: vec![String::new()],
                officer: "o".repeat(201),
                declared_after: Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            page_size: -1,
            page_token: "forged".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "filter.states[0]",
            "filter.levels[0]",
            "filter.categories[0]",
            "filter.officer",
            "filter.declared_after",
            "page_size",
            "page_token",
        ]
    );

    // A token is bound to its filter.
    let page = sam
        .list_incidents(pb::ListIncidentsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    raise(&c, 2, false).await;
    let token = sam
        .list_incidents(pb::ListIncidentsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(page.next_page_token.is_empty() && !token.is_empty());
    let err = sam
        .list_incidents(pb::ListIncidentsRequest {
            filter: Some(pb::IncidentFilter {
                personal_data: Some(true),
                ..Default::default()
            }),
            page_size: 1,
            page_token: token,
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["page_token"]);

    let err = sam
        .investigate_incident(pb::InvestigateIncidentRequest {
            incident_id: String::new(),
            revision: 0,
            note: "\u{202E}".into(),
            idempotency_key: "not a uuid".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        ["incident_id", "revision", "note", "idempotency_key"]
    );

    let err = sam
        .assign_incident_officer(pb::AssignIncidentOfficerRequest {
            incident_id: incident.id.clone(),
            revision: 1,
            officer: "olga smith".into(),
            note: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["officer", "idempotency_key"]);

    let err = sam
        .update_incident(pb::UpdateIncidentRequest {
            incident_id: incident.id.clone(),
            revision: 1,
            incident: Some(pb::Incident {
                title: String::new(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["title".into()],
            }),
            reason: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["reason", "incident.title"]);
    let err = sam
        .update_incident(pb::UpdateIncidentRequest {
            incident_id: incident.id.clone(),
            revision: 1,
            incident: None,
            update_mask: None,
            reason: "why".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["incident", "update_mask"]);

    let err = sam
        .add_incident_action(pb::AddIncidentActionRequest {
            incident_id: incident.id.clone(),
            kind: pb::IncidentActionKind::StateChanged as i32,
            detail: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["kind", "detail"]);

    let err = sam
        .grant_incident_access(pb::GrantIncidentAccessRequest {
            incident_id: incident.id.clone(),
            subject: String::new(),
            reason: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["subject", "reason", "idempotency_key"]);

    let err = sam
        .list_incident_actions(pb::ListIncidentActionsRequest {
            incident_id: incident.id.clone(),
            kinds: vec![0, 42],
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["kinds[0]", "kinds[1]"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_needs_a_token_and_services_only_read() {
    let c = TestClassification::start(custos_testing::Backend::Sqlite).await;
    let incident = raise(&c, 1, false).await;
    let mut nobody = pb::incident_service_client::IncidentServiceClient::new(
        custos_testing::anonymous(c.running.addr),
    );
    let err = nobody
        .get_incident(pb::GetIncidentRequest {
            incident_id: incident.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = nobody
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A service reads every incident but changes none.
    let mut svc = c.incidents("escalation", &[Role::Service]);
    svc.get_incident(pb::GetIncidentRequest {
        incident_id: incident.id.clone(),
    })
    .await
    .expect("services read");
    let err = svc
        .investigate_incident(pb::InvestigateIncidentRequest {
            incident_id: incident.id.clone(),
            revision: 1,
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = svc
        .add_incident_action(pb::AddIncidentActionRequest {
            incident_id: incident.id.clone(),
            kind: pb::IncidentActionKind::Recovery as i32,
            detail: "restored".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}
