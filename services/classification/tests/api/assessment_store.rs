//! The assessment store's contract, on both backends: incidents numbered in order, a
//! report's link following its latest assessment, the history newest first, and the
//! database refusing a second assessment with the same sequence.

use custos_classification::{
    assessment::{Decision, DimensionImpact, Impact, IncidentState},
    matrix::Level,
    report::{Kind, Medium, TriageState},
    store::{self, NewAssessment, NewIncident},
};
use custos_kit::storage::{Db, JsonText};
use custos_testing::{Backend, on_both_backends};
use uuid::Uuid;

use crate::store_contract::{at, db, entry, queue};

fn impact(level: Level) -> Impact {
    Impact {
        matrix_revision: "fc50a5a7d4ef41e3".into(),
        overall: level,
        dimensions: vec![DimensionImpact {
            dimension: "financial".into(),
            row: "major".into(),
            level,
            descriptor: "£500,000 to £1 million".into(),
            figure_row: Some("major".into()),
            chosen_row: None,
        }],
    }
}

async fn declare(db: &Db, title: &str) -> (Uuid, String) {
    let id = Uuid::now_v7();
    let mut tx = db.begin().await.unwrap();
    let reference = store::declare(
        &mut tx,
        &NewIncident {
            id,
            title: title.into(),
            summary: String::new(),
            category: "malware_infection".into(),
            impact: impact(Level::High),
            declared_by: "sam".into(),
            declared_at: at(1),
        },
        "INC-2026-",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (id, reference)
}

fn assessment(
    report_id: Uuid,
    sequence: i32,
    decision: Decision,
    incident: Option<Uuid>,
) -> NewAssessment {
    NewAssessment {
        id: Uuid::now_v7(),
        report_id,
        sequence,
        report_revision: 1,
        category: "malware_infection".into(),
        impact: impact(Level::Medium),
        decision,
        reason: String::new(),
        note: format!("assessment {sequence}"),
        incident_id: incident,
        assessed_by: "sam".into(),
        assessed_at: at(sequence.into()),
    }
}

async fn record(
    db: &Db,
    a: &NewAssessment,
    state: TriageState,
) -> Result<(), custos_kit::storage::StorageError> {
    let mut tx = db.begin().await.unwrap();
    store::record(&mut tx, a, state).await?;
    tx.commit().await
}

async fn linked(db: &Db, incident: Uuid) -> Vec<Uuid> {
    store::incident_report_ids(db.read().await.unwrap(), incident)
        .await
        .unwrap()
}

async fn reports_follow_their_latest_assessment(backend: Backend) {
    let (_database, db) = db(backend).await;
    let (one, first_ref) = declare(&db, "first").await;
    let (two, second_ref) = declare(&db, "second").await;
    assert_eq!(
        (first_ref.as_str(), second_ref.as_str()),
        ("INC-2026-000001", "INC-2026-000002")
    );

    let report = entry(
        1,
        Kind::Event,
        "malware_infection",
        Medium::Electronic,
        false,
    );
    queue(&db, &report).await;
    let id = report.report_id;

    record(
        &db,
        &assessment(id, 1, Decision::LinkIncident, Some(one)),
        TriageState::Incident,
    )
    .await
    .unwrap();
    assert_eq!(linked(&db, one).await, [id]);
    record(
        &db,
        &assessment(id, 2, Decision::LinkIncident, Some(two)),
        TriageState::Incident,
    )
    .await
    .unwrap();
    assert_eq!(
        (linked(&db, one).await, linked(&db, two).await),
        (vec![], vec![id])
    );
    record(
        &db,
        &assessment(id, 3, Decision::Dismiss, None),
        TriageState::Dismissed,
    )
    .await
    .unwrap();
    assert!(
        linked(&db, two).await.is_empty(),
        "dismissed: in no incident"
    );

    let mut tx = db.begin().await.unwrap();
    let held = store::assessable(&mut tx, id).await.unwrap().unwrap();
    assert_eq!(
        (held.assessment_sequence, held.report_revision, held.kind),
        (3, 1, Kind::Event)
    );
    let by_ref = store::incident_ref(&mut tx, None, &second_ref)
        .await
        .unwrap()
        .unwrap();
    let by_id = store::incident_ref(&mut tx, Some(two), "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ref, by_id);
    assert_eq!((by_id.id, by_id.state), (two, IncidentState::Open));
    assert!(
        store::incident_ref(&mut tx, None, "INC-2026-000003")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store::assessable(&mut tx, Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    let queued = store::entry(db.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.state, TriageState::Dismissed);

    // The history, newest first, as made; paged by sequence.
    let all = store::assessments(db.read().await.unwrap(), id, None, 10)
        .await
        .unwrap();
    let seen: Vec<(i32, Decision, Option<String>)> = all
        .iter()
        .map(|a| (a.sequence, a.decision, a.incident_reference.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (3, Decision::Dismiss, None),
            (2, Decision::LinkIncident, Some(second_ref)),
            (1, Decision::LinkIncident, Some(first_ref)),
        ]
    );
    assert_eq!(all[0].impact, JsonText(impact(Level::Medium)));
    assert_eq!(
        (all[0].overall_level, all[0].report_reference.as_str()),
        (Level::Medium, "SIR-2026-000001")
    );
    let older = store::assessments(db.read().await.unwrap(), id, Some(3), 1)
        .await
        .unwrap();
    assert_eq!(older.iter().map(|a| a.sequence).collect::<Vec<_>>(), [2]);

    // The same sequence twice is refused by the database itself, and writes nothing.
    let err = record(
        &db,
        &assessment(id, 3, Decision::Monitor, None),
        TriageState::Monitoring,
    )
    .await
    .unwrap_err();
    assert!(err.nothing_written(), "{err:?}");
    assert_eq!(
        store::assessments(db.read().await.unwrap(), id, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );
}

on_both_backends!(reports_follow_their_latest_assessment);
