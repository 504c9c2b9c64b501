//! The incident register end to end: an incident raised by AssessReport moves along its
//! lifecycle one step at a time, against the revision read; every change is in the
//! append-only actions log and its event is in the outbox exactly once; a retry changes
//! nothing; UpdateIncident changes what its mask names and nothing else.

use custos_classification::{
    report::{Kind, Medium},
    store::NewEntry,
};
use custos_kit::{
    auth::Role,
    error::{status_reason, status_violations},
    storage::Db,
};
use custos_proto::classification::v1::{self as pb, assess_report_request::Decision};
use custos_testing::{Backend, on_both_backends};
use prost::{Message, Name};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    assess::{advisor, choices},
    common::*,
    store_contract::{entry, queue},
};

/// Queues `e` and raises an incident from it; returns the incident.
pub(crate) async fn raise_from(c: &TestClassification, e: &NewEntry, title: &str) -> pb::Incident {
    queue(&c.db, e).await;
    let assessment = advisor(c)
        .assess_report(pb::AssessReportRequest {
            report_id: e.report_id.to_string(),
            report_revision: 1,
            previous_sequence: 0,
            category: e.category.clone(),
            figures: None,
            choices: choices("minor", Some("financial")),
            decision: Some(Decision::RaiseIncident(pb::RaiseIncidentDecision {
                title: title.into(),
                summary: "Laptop missing from the second floor".into(),
            })),
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .expect("raise an incident")
        .into_inner()
        .assessment
        .unwrap();
    get(
        c,
        "sam",
        &[Role::SecurityAdvisor],
        &assessment.incident_reference,
    )
    .await
    .expect("the advisor sees the incident")
}

/// Raises an incident from a new electronic report (`personal`: about personal data).
pub(crate) async fn raise(c: &TestClassification, n: i64, personal: bool) -> pb::Incident {
    let e = entry(
        n,
        Kind::Event,
        "loss_or_theft_of_data",
        Medium::Electronic,
        personal,
    );
    raise_from(c, &e, &format!("Incident {n}")).await
}

pub(crate) async fn get(
    c: &TestClassification,
    subject: &str,
    roles: &[Role],
    id: &str,
) -> Result<pb::Incident, tonic::Status> {
    Ok(c.incidents(subject, roles)
        .get_incident(pb::GetIncidentRequest {
            incident_id: id.into(),
        })
        .await?
        .into_inner()
        .incident
        .unwrap())
}

pub(crate) async fn log(c: &TestClassification, id: &str) -> Vec<pb::IncidentAction> {
    c.incidents("sam", &[Role::SecurityAdvisor])
        .list_incident_actions(pb::ListIncidentActionsRequest {
            incident_id: id.into(),
            kinds: vec![],
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .expect("list actions")
        .into_inner()
        .actions
}

/// The payloads of type `M` in the outbox about `aggregate`, in order: every committed
/// row (a feed would hold back the newest behind other tests' open transactions).
pub(crate) async fn events<M: Message + Name + Default>(db: &Db, aggregate: &str) -> Vec<M> {
    let mut conn = db.read().await.unwrap();
    let rows: Vec<(String, String, Vec<u8>)> = custos_kit::with_conn!(&mut conn, c => {
        sqlx::query_as(
            "SELECT event_type, aggregate_id, payload FROM outbox ORDER BY epoch, txid, id",
        )
        .fetch_all(&mut *c)
        .await
        .unwrap()
    });
    rows.into_iter()
        .filter(|(t, a, _)| *t == M::full_name() && a == aggregate)
        .map(|(_, _, payload)| M::decode(payload.as_slice()).unwrap())
        .collect()
}

fn reason(status: &tonic::Status) -> String {
    status_reason(status).map(|(r, _)| r).unwrap_or_default()
}

async fn the_lifecycle_runs_one_way_and_is_logged(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, false).await;
    assert_eq!(incident.state, pb::incident::State::Open as i32);
    assert_eq!((incident.revision, incident.report_count), (1, 1));
    assert!(incident.reference.starts_with("INC-"));
    let by_id = get(&c, "sam", &[Role::SecurityAdvisor], &incident.id)
        .await
        .unwrap();
    assert_eq!(by_id, incident, "by id and by reference alike");
    let mut officer = c.incidents("sam", &[Role::SecurityAdvisor]);
    let investigate = |revision: i32, note: &str, key: &str| pb::InvestigateIncidentRequest {
        incident_id: incident.reference.clone(),
        revision,
        note: note.into(),
        idempotency_key: key.into(),
    };

    // A step skipped: the one allowed move is named.
    let err = officer
        .contain_incident(pb::ContainIncidentRequest {
            incident_id: incident.id.clone(),
            revision: 1,
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "INCIDENT_STATE");
    let failure = err
        .get_details_precondition_failure()
        .expect("a PreconditionFailure");
    assert!(
        failure.violations[0]
            .description
            .contains("STATE_INVESTIGATING (InvestigateIncident)"),
        "{failure:?}"
    );
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.metadata["allowed"], "STATE_INVESTIGATING");

    // A stale view.
    let err = officer
        .investigate_incident(investigate(7, "", &key()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::Aborted, "INCIDENT_CHANGED".into())
    );
    assert_eq!(
        err.get_details_error_info().unwrap().metadata["revision"],
        "1"
    );

    // The move, retried: one change.
    let k = key();
    let moved = officer
        .investigate_incident(investigate(1, "triage begun", &k))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(
        (moved.state, moved.revision),
        (pb::incident::State::Investigating as i32, 2)
    );
    let again = officer
        .investigate_incident(investigate(1, "triage begun", &k))
        .await
        .expect("a retry is answered as the first call was")
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(again, moved);
    let err = officer
        .investigate_incident(investigate(1, "another note", &k))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "IDEMPOTENCY_KEY_REUSED");

    let mut revision = moved.revision;
    for to in ["contain", "recover", "resolve"] {
        let (id, k) = (incident.id.clone(), key());
        let r = match to {
            "contain" => officer
                .contain_incident(pb::ContainIncidentRequest {
                    incident_id: id,
                    revision,
                    note: String::new(),
                    idempotency_key: k,
                })
                .await
                .map(|r| r.into_inner().incident.unwrap()),
            "recover" => officer
                .recover_incident(pb::RecoverIncidentRequest {
                    incident_id: id,
                    revision,
                    note: String::new(),
                    idempotency_key: k,
                })
                .await
                .map(|r| r.into_inner().incident.unwrap()),
            _ => officer
                .resolve_incident(pb::ResolveIncidentRequest {
                    incident_id: id,
                    revision,
                    note: String::new(),
                    idempotency_key: k,
                })
                .await
                .map(|r| r.into_inner().incident.unwrap()),
        }
        .unwrap_or_else(|e| panic!("{to}: {e:?}"));
        assert_eq!(r.revision, revision + 1);
        revision = r.revision;
    }
    let resolved = get(&c, "sam", &[Role::SecurityAdvisor], &incident.id)
        .await
        .unwrap();
    assert_eq!(resolved.state, pb::incident::State::Resolved as i32);
    let err = officer
        .investigate_incident(investigate(revision, "", &key()))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INCIDENT_STATE");

    // Every move logged once, in order, with its note, after the declaration.
    let mut entries = log(&c, &incident.id).await;
    let declared = entries.remove(0);
    assert_eq!(declared.kind, pb::IncidentActionKind::ReportLinked as i32);
    assert_eq!(declared.detail, "declared from report SIR-2026-000001");
    let details: Vec<&str> = entries.iter().map(|a| a.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "STATE_OPEN → STATE_INVESTIGATING: triage begun",
            "STATE_INVESTIGATING → STATE_CONTAINED",
            "STATE_CONTAINED → STATE_RECOVERING",
            "STATE_RECOVERING → STATE_RESOLVED",
        ]
    );
    assert!(
        entries
            .iter()
            .all(|a| a.kind == pb::IncidentActionKind::StateChanged as i32 && a.actor == "sam")
    );
    assert_eq!(
        entries.iter().map(|a| a.sequence).collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );

    // Each move's event once, with the revision it made.
    let moves: Vec<(i32, i32, i32)> = events::<pb::IncidentStateChanged>(&c.db, &incident.id)
        .await
        .into_iter()
        .map(|e| (e.from, e.to, e.revision))
        .collect();
    use pb::incident::State as S;
    assert_eq!(
        moves,
        [
            (S::Open as i32, S::Investigating as i32, 2),
            (S::Investigating as i32, S::Contained as i32, 3),
            (S::Contained as i32, S::Recovering as i32, 4),
            (S::Recovering as i32, S::Resolved as i32, 5),
        ]
    );
}

async fn the_actions_log_is_append_only(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, false).await;
    let added = c
        .incidents("sam", &[Role::SecurityAdvisor])
        .add_incident_action(pb::AddIncidentActionRequest {
            incident_id: incident.id.clone(),
            kind: pb::IncidentActionKind::Identification as i32,
            detail: "Laptop LT-00421 unencrypted; no remote wipe".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .action
        .unwrap();
    assert_eq!((added.sequence, added.actor.as_str()), (2, "sam"));
    assert_eq!(log(&c, &incident.id).await[1..], [added]);
    // Not even the service's own connection may change or remove an entry.
    for sql in [
        "UPDATE incident_actions SET detail = 'nothing happened'",
        "DELETE FROM incident_actions",
    ] {
        let mut tx = c.db.begin().await.unwrap();
        let refused = custos_kit::with_conn!(&mut tx, conn => {
            sqlx::query(sql).execute(&mut *conn).await.is_err()
        });
        assert!(refused, "{sql} was allowed");
    }
    assert_eq!(log(&c, &incident.id).await.len(), 2);
}

async fn updates_change_what_the_mask_names(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, false).await;
    let mut sam = c.incidents("sam", &[Role::SecurityAdvisor]);
    let update =
        |revision: i32, flags: pb::IncidentFlags, paths: &[&str]| pb::UpdateIncidentRequest {
            incident_id: incident.id.clone(),
            revision,
            incident: Some(pb::Incident {
                title: "Not this".into(),
                flags: Some(flags),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| (*p).into()).collect(),
            }),
            reason: "the payroll run failed".into(),
            idempotency_key: key(),
        };
    let affecting = |services: &[&str]| pb::IncidentFlags {
        service_affecting: true,
        business_services: services.iter().map(|s| (*s).into()).collect(),
        ..Default::default()
    };

    let err = sam
        .update_incident(update(1, affecting(&[]), &["flags.service_affecting"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        status_violations(&err)[0].field,
        "incident.flags.business_services"
    );
    let err = sam
        .update_incident(update(
            1,
            affecting(&["payroll", "moon-base"]),
            &["*", "state", "flags"],
        ))
        .await
        .unwrap_err();
    let fields: Vec<String> = status_violations(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "update_mask.paths[0]",
            "update_mask.paths[1]",
            "incident.flags.business_services[1]"
        ]
    );

    let updated = sam
        .update_incident(update(
            1,
            affecting(&["payroll", "email", "payroll"]),
            &["flags"],
        ))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    let flags = updated.flags.clone().unwrap();
    assert_eq!(
        flags.business_services,
        ["email", "payroll"],
        "sorted, once each"
    );
    assert!(flags.service_affecting && !flags.evidence_required);
    assert_eq!(
        (updated.title.as_str(), updated.revision),
        ("Incident 1", 2),
        "the title is not in the mask"
    );

    let evidence = pb::IncidentFlags {
        evidence_required: true,
        ..Default::default()
    };
    let flagged = sam
        .update_incident(update(2, evidence.clone(), &["flags.evidence_required"]))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert!(flagged.flags.as_ref().unwrap().evidence_required);
    assert!(
        flagged.flags.as_ref().unwrap().service_affecting,
        "other flags kept"
    );
    // Setting what is already set changes nothing: no revision, no event.
    let same = sam
        .update_incident(update(3, evidence, &["flags.evidence_required"]))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(same.revision, 3);

    let changed = events::<pb::IncidentFlagsChanged>(&c.db, &incident.id).await;
    assert_eq!(
        changed.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(changed[1].flags, flagged.flags);
    let required = events::<pb::IncidentEvidenceRequired>(&c.db, &incident.id).await;
    assert_eq!(required.iter().map(|e| e.revision).collect::<Vec<_>>(), [3]);
    let logged: Vec<String> = log(&c, &incident.id)
        .await
        .into_iter()
        .skip(1)
        .map(|a| a.detail)
        .collect();
    assert_eq!(
        logged,
        [
            "changed flags.service_affecting, flags.business_services: the payroll run failed",
            "changed flags.evidence_required: the payroll run failed",
        ]
    );

    // Turning service_affecting off clears the services.
    let off = sam
        .update_incident(update(
            3,
            pb::IncidentFlags::default(),
            &["flags.service_affecting"],
        ))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert!(off.flags.unwrap().business_services.is_empty());
}

async fn a_linked_report_raises_the_flags_it_brings(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, false).await;
    let flags = incident.flags.clone().unwrap();
    assert!(!flags.personal_data && !flags.paper_records);
    let paper = entry(2, Kind::Event, "loss_or_theft_of_data", Medium::Paper, true);
    queue(&c.db, &paper).await;
    advisor(&c)
        .assess_report(pb::AssessReportRequest {
            report_id: paper.report_id.to_string(),
            report_revision: 1,
            previous_sequence: 0,
            category: paper.category.clone(),
            figures: None,
            choices: choices("minor", None),
            decision: Some(Decision::LinkIncident(pb::LinkIncidentDecision {
                incident_id: incident.reference.clone(),
            })),
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .expect("link");
    let linked = get(&c, "sam", &[Role::SecurityAdvisor], &incident.id)
        .await
        .unwrap();
    let flags = linked.flags.clone().unwrap();
    assert!(flags.personal_data && flags.paper_records);
    assert_eq!((linked.revision, linked.report_count), (2, 2));
    let changed = events::<pb::IncidentFlagsChanged>(&c.db, &incident.id).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].flags, linked.flags);
    assert_eq!(
        log(&c, &incident.id).await.last().unwrap().detail,
        "report SIR-2026-000002 linked; it raised flags.personal_data, flags.paper_records"
    );
    // A report that raises an incident brings its flags from the start.
    let raised = raise_from(
        &c,
        &entry(
            3,
            Kind::Event,
            "loss_or_theft_of_data",
            Medium::Paper,
            false,
        ),
        "Paper",
    )
    .await;
    let flags = raised.flags.unwrap();
    assert!(flags.paper_records && !flags.personal_data);
}

on_both_backends!(
    the_lifecycle_runs_one_way_and_is_logged,
    the_actions_log_is_append_only,
    updates_change_what_the_mask_names,
    a_linked_report_raises_the_flags_it_brings,
);
