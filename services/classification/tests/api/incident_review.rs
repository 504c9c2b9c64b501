//! The rest of an incident's life: its impact assessed again (a new level is an event),
//! a personal-data breach and the decision about the regulator, its costs with totals,
//! and the post-incident review that closing approves.

use custos_kit::{
    auth::Role,
    error::{status_reason, status_violations},
};
use custos_proto::{classification::v1 as pb, google::r#type::Money};
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::{
    assess::choices,
    common::*,
    incidents::{events, get, raise},
};

const ADVISOR: &[Role] = &[Role::SecurityAdvisor];

fn reason(status: &tonic::Status) -> String {
    status_reason(status).map(|(r, _)| r).unwrap_or_default()
}

fn fields(status: &tonic::Status) -> Vec<String> {
    status_violations(status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}

async fn resolve(c: &TestClassification, incident: &pb::Incident) -> pb::Incident {
    let mut sam = c.incidents("sam", ADVISOR);
    let id = incident.id.clone();
    let mut revision = incident.revision;
    let next = |r: &pb::Incident| r.revision;
    let r = sam
        .investigate_incident(pb::InvestigateIncidentRequest {
            incident_id: id.clone(),
            revision,
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    revision = next(&r);
    let r = sam
        .contain_incident(pb::ContainIncidentRequest {
            incident_id: id.clone(),
            revision,
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    revision = next(&r);
    let r = sam
        .recover_incident(pb::RecoverIncidentRequest {
            incident_id: id.clone(),
            revision,
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    revision = next(&r);
    sam.resolve_incident(pb::ResolveIncidentRequest {
        incident_id: id,
        revision,
        note: String::new(),
        idempotency_key: key(),
    })
    .await
    .unwrap()
    .into_inner()
    .incident
    .unwrap()
}

fn review(incident: &pb::Incident) -> pb::RecordIncidentReviewRequest {
    pb::RecordIncidentReviewRequest {
        incident_id: incident.id.clone(),
        revision: incident.revision,
        root_cause: "Laptop left unattended in a meeting room".into(),
        vulnerabilities_exploited: vec!["No full-disk encryption".into(), String::new()],
        lessons: "Encrypt every laptop before issue".into(),
        process_changes: vec!["Issue checklist includes BitLocker".into()],
        idempotency_key: key(),
    }
}

fn close(incident: &pb::Incident) -> pb::CloseIncidentRequest {
    pb::CloseIncidentRequest {
        incident_id: incident.id.clone(),
        revision: incident.revision,
        note: "reviewed at the monthly board".into(),
        idempotency_key: key(),
    }
}

async fn closing_approves_the_review(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, false).await;
    let mut sam = c.incidents("sam", ADVISOR);
    let err = sam
        .record_incident_review(review(&incident))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "INCIDENT_STATE".into())
    );
    let resolved = resolve(&c, &incident).await;
    let err = sam.close_incident(close(&resolved)).await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "REVIEW_REQUIRED".into())
    );
    let reviewed = sam
        .record_incident_review(review(&resolved))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    let recorded = reviewed.review.clone().unwrap();
    assert_eq!(
        recorded.vulnerabilities_exploited,
        ["No full-disk encryption"],
        "blanks dropped"
    );
    assert!(recorded.approved_by.is_empty());

    // The review's author does not approve it.
    let err = sam.close_incident(close(&reviewed)).await.unwrap_err();
    assert_eq!(reason(&err), "APPROVER_REQUIRED");
    // Nor does the officer, even as policy owner.
    sam.assign_incident_officer(pb::AssignIncidentOfficerRequest {
        incident_id: incident.id.clone(),
        revision: reviewed.revision,
        officer: "olga".into(),
        note: String::new(),
        idempotency_key: key(),
    })
    .await
    .unwrap();
    let current = get(&c, "olga", &[Role::IncidentOfficer], &incident.id)
        .await
        .unwrap();
    let err = c
        .incidents("olga", &[Role::IncidentOfficer, Role::PolicyOwner])
        .close_incident(close(&current))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::PermissionDenied, "APPROVER_REQUIRED".into())
    );
    // The policy owner on the access list does.
    sam.grant_incident_access(pb::GrantIncidentAccessRequest {
        incident_id: incident.id.clone(),
        subject: "pat".into(),
        reason: "approves reviews".into(),
        idempotency_key: key(),
    })
    .await
    .unwrap();
    let closed = c
        .incidents("pat", &[Role::PolicyOwner])
        .close_incident(close(&current))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(closed.state, pb::incident::State::Closed as i32);
    assert!(closed.closed_at.is_some());
    let approved = closed.review.clone().unwrap();
    assert_eq!(approved.approved_by, "pat");
    assert_eq!(approved.root_cause, recorded.root_cause);
    let last = events::<pb::IncidentStateChanged>(&c.db, &incident.id).await;
    assert_eq!(last.last().unwrap().to, pb::incident::State::Closed as i32);
    assert_eq!(last.last().unwrap().revision, closed.revision);
    // Closed: nothing changes but the costs ledger and who may read it.
    let err = sam
        .record_incident_review(review(&closed))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INCIDENT_CLOSED");
    let err = sam.close_incident(close(&closed)).await.unwrap_err();
    assert_eq!(reason(&err), "INCIDENT_CLOSED");
    let err = sam
        .reassess_incident_impact(pb::ReassessIncidentImpactRequest {
            incident_id: incident.id.clone(),
            revision: closed.revision,
            figures: None,
            choices: choices("minor", None),
            reason: "after the fact".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INCIDENT_CLOSED");
    let err = sam
        .record_breach_awareness(pb::RecordBreachAwarenessRequest {
            incident_id: incident.id.clone(),
            revision: closed.revision,
            aware_at: Some(custos_kit::time_fmt::to_timestamp(
                time::OffsetDateTime::now_utc(),
            )),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INCIDENT_CLOSED");
    sam.add_incident_cost(pb::AddIncidentCostRequest {
        incident_id: incident.id.clone(),
        category: "fines_and_penalties".into(),
        amount: Some(Money {
            currency_code: "GBP".into(),
            units: 5_000,
            nanos: 0,
        }),
        description: "Regulator's fine, invoiced after closing".into(),
        idempotency_key: key(),
    })
    .await
    .expect("costs come after closing");
}

async fn a_new_level_is_an_event_and_the_history_is_kept(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, true).await;
    assert_eq!(
        incident.overall_level,
        pb::ImpactLevel::High as i32,
        "raised with one major"
    );
    let mut sam = c.incidents("sam", ADVISOR);
    let reassess = |revision: i32, row: &str, reason: &str| pb::ReassessIncidentImpactRequest {
        incident_id: incident.id.clone(),
        revision,
        figures: None,
        choices: choices(row, None),
        reason: reason.into(),
        idempotency_key: key(),
    };
    let lower = sam
        .reassess_incident_impact(reassess(1, "minor", "the laptop was found"))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(
        (lower.overall_level, lower.revision),
        (pb::ImpactLevel::Low as i32, 2)
    );
    let same = sam
        .reassess_incident_impact(reassess(2, "none", "nothing was read"))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(same.overall_level, pb::ImpactLevel::Low as i32);
    let mut unscored = reassess(3, "minor", "x");
    unscored.choices.pop();
    let err = sam.reassess_incident_impact(unscored).await.unwrap_err();
    assert_eq!(reason(&err), "IMPACT_UNSCORED");

    let changes: Vec<(i32, i32, i32)> = events::<pb::IncidentLevelChanged>(&c.db, &incident.id)
        .await
        .into_iter()
        .map(|e| (e.from, e.to, e.revision))
        .collect();
    assert_eq!(
        changes,
        [(pb::ImpactLevel::High as i32, pb::ImpactLevel::Low as i32, 2)]
    );
    let history = sam
        .list_incident_impacts(pb::ListIncidentImpactsRequest {
            incident_id: incident.reference.clone(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let levels: Vec<(i32, i32, &str)> = history
        .impacts
        .iter()
        .map(|i| {
            (
                i.sequence,
                i.impact.as_ref().unwrap().overall_level,
                i.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            (1, pb::ImpactLevel::High as i32, ""),
            (2, pb::ImpactLevel::Low as i32, "the laptop was found")
        ]
    );
    let rest = sam
        .list_incident_impacts(pb::ListIncidentImpactsRequest {
            incident_id: incident.id.clone(),
            page_size: 2,
            page_token: history.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.impacts.len(), 1);
    assert!(rest.next_page_token.is_empty());
    let audited = custos_kit::audit::entries(c.db.read().await.unwrap(), &incident.id)
        .await
        .unwrap();
    let reads = audited
        .iter()
        .filter(|(_, a)| a == "incident.impacts.read")
        .count();
    assert_eq!(
        reads, 2,
        "each page of the history of a personal-data incident"
    );
}

async fn a_breach_is_recorded_and_decided(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, false).await;
    let mut sam = c.incidents("sam", ADVISOR);
    let decide = |revision: i32, decision: pb::BreachDecision, reference: &str| {
        pb::DecideBreachNotificationRequest {
            incident_id: incident.id.clone(),
            revision,
            decision: decision as i32,
            reason: "names and addresses of 40 residents".into(),
            regulator_reference: reference.into(),
            idempotency_key: key(),
        }
    };
    let err = sam
        .decide_breach_notification(decide(1, pb::BreachDecision::Notify, ""))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "BREACH_NOT_RECORDED");
    let aware = |revision: i32, at: time::OffsetDateTime| pb::RecordBreachAwarenessRequest {
        incident_id: incident.id.clone(),
        revision,
        aware_at: Some(custos_kit::time_fmt::to_timestamp(at)),
        idempotency_key: key(),
    };
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let err = sam
        .record_breach_awareness(aware(1, now + time::Duration::hours(1)))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["aware_at"]);
    let recorded = sam
        .record_breach_awareness(aware(1, now - time::Duration::hours(2)))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    let breach = recorded.breach.clone().unwrap();
    let due = custos_kit::time_fmt::from_timestamp(breach.report_due_at.as_ref().unwrap()).unwrap();
    assert_eq!(due, now + time::Duration::hours(70));
    assert!(
        recorded.flags.unwrap().personal_data,
        "a breach involves personal data"
    );
    assert_eq!(
        events::<pb::IncidentBreachRecorded>(&c.db, &incident.id)
            .await
            .len(),
        1
    );
    assert_eq!(
        events::<pb::IncidentFlagsChanged>(&c.db, &incident.id)
            .await
            .len(),
        1
    );

    // The DPO decides, from the access list.
    let err = c
        .incidents("dee", &[Role::Dpo])
        .decide_breach_notification(decide(2, pb::BreachDecision::Notify, ""))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "not on the list: no such incident"
    );
    for subject in ["dee", "rita"] {
        sam.grant_incident_access(pb::GrantIncidentAccessRequest {
            incident_id: incident.id.clone(),
            subject: subject.into(),
            reason: "to decide".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap();
    }
    let err = c
        .incidents("rita", &[Role::Responder])
        .decide_breach_notification(decide(2, pb::BreachDecision::Notify, ""))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "NOT_INCIDENT_OFFICER");
    let mut dee = c.incidents("dee", &[Role::Dpo]);
    let err = dee
        .decide_breach_notification(decide(2, pb::BreachDecision::DoNotNotify, "ICO-1"))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["regulator_reference"]);
    let decided = dee
        .decide_breach_notification(decide(2, pb::BreachDecision::Notify, "ICO-00123"))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    let breach = decided.breach.unwrap();
    assert_eq!(
        (
            breach.decision,
            breach.decided_by.as_str(),
            breach.regulator_reference.as_str()
        ),
        (pb::BreachDecision::Notify as i32, "dee", "ICO-00123")
    );
    let decisions = events::<pb::IncidentBreachDecided>(&c.db, &incident.id).await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].revision, decided.revision);
    let err = sam
        .record_breach_awareness(aware(decided.revision, now))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "BREACH_DECIDED");
    // Told is told; decided again, the reference stays.
    let err = dee
        .decide_breach_notification(decide(
            decided.revision,
            pb::BreachDecision::DoNotNotify,
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "BREACH_NOTIFIED");
    let again = dee
        .decide_breach_notification(decide(decided.revision, pb::BreachDecision::Notify, ""))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(again.breach.unwrap().regulator_reference, "ICO-00123");
    // A recorded breach keeps the incident flagged as personal data.
    let err = sam
        .update_incident(pb::UpdateIncidentRequest {
            incident_id: incident.id.clone(),
            revision: again.revision,
            incident: Some(pb::Incident::default()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["flags.personal_data".into()],
            }),
            reason: "no personal data after all".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["incident.flags.personal_data"]);
}

async fn an_undecided_breach_keeps_the_incident_open(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, true).await;
    let mut sam = c.incidents("sam", ADVISOR);
    let at = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let aware = |revision: i32| pb::RecordBreachAwarenessRequest {
        incident_id: incident.id.clone(),
        revision,
        aware_at: Some(custos_kit::time_fmt::to_timestamp(at)),
        idempotency_key: key(),
    };
    let recorded = sam
        .record_breach_awareness(aware(1))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    // The same time again changes nothing.
    let same = sam
        .record_breach_awareness(aware(recorded.revision))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(same.revision, recorded.revision);
    assert_eq!(
        events::<pb::IncidentBreachRecorded>(&c.db, &incident.id)
            .await
            .len(),
        1
    );
    let resolved = resolve(&c, &recorded).await;
    let reviewed = sam
        .record_incident_review(review(&resolved))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    let err = c
        .incidents("pat", &[Role::PolicyOwner, Role::SecurityAdvisor])
        .close_incident(close(&reviewed))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "BREACH_UNDECIDED");
}

on_both_backends!(
    closing_approves_the_review,
    a_new_level_is_an_event_and_the_history_is_kept,
    a_breach_is_recorded_and_decided,
    an_undecided_breach_keeps_the_incident_open,
);
