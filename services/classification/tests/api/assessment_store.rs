//! The assessment store's contract, on both backends: incidents numbered in order, a
//! report's link following its latest assessment, the history newest first, and the
//! database refusing a second assessment with the same sequence.

use custos_classification::{
    assessment::{Decision, DimensionImpact, GivenFigures, Impact, IncidentState},
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
        figures: GivenFigures {
            people_disciplined: Some(2),
            ..Default::default()
        },
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
) -> Result<bool, custos_kit::storage::StorageError> {
    let mut tx = db.begin().await.unwrap();
    let moved = store::record(&mut tx, a, state).await?;
    tx.commit().await?;
    Ok(moved)
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

    assert!(
        record(
            &db,
            &assessment(id, 1, Decision::LinkIncident, Some(one)),
            TriageState::Incident,
        )
        .await
        .unwrap()
    );
    assert_eq!(linked(&db, one).await, [id]);
    assert!(
        record(
            &db,
            &assessment(id, 2, Decision::LinkIncident, Some(two)),
            TriageState::Incident,
        )
        .await
        .unwrap()
    );
    assert_eq!(
        (linked(&db, one).await, linked(&db, two).await),
        (vec![], vec![id])
    );
    assert!(
        record(
            &db,
            &assessment(id, 3, Decision::Dismiss, None),
            TriageState::Dismissed,
        )
        .await
        .unwrap()
    );
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

    // An assessment that is not the next one (a stale sequence, or one skipped) writes
    // nothing: not the entry, not the assessment, not the link.
    for (sequence, incident) in [(3, Some(one)), (5, Some(one))] {
        let stale = assessment(id, sequence, Decision::LinkIncident, incident);
        assert!(!record(&db, &stale, TriageState::Incident).await.unwrap());
    }
    assert_eq!(
        store::assessments(db.read().await.unwrap(), id, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(linked(&db, one).await.is_empty());
    let queued = store::entry(db.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.state, TriageState::Dismissed);
}

/// Two assessments of one report are decided one after the other: the second reads the
/// report only once the first has committed, and so sees its sequence.
async fn assessments_of_one_report_wait_for_each_other(backend: Backend) {
    let (_database, db) = db(backend).await;
    let report = entry(
        1,
        Kind::Event,
        "malware_infection",
        Medium::Electronic,
        false,
    );
    queue(&db, &report).await;
    let id = report.report_id;
    let mut first = db.begin().await.unwrap();
    let held = store::assessable(&mut first, id).await.unwrap().unwrap();
    assert_eq!(held.assessment_sequence, 0);
    let second = tokio::spawn({
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let seen = store::assessable(&mut tx, id).await.unwrap().unwrap();
            tx.commit().await.unwrap();
            seen.assessment_sequence
        }
    });
    // The second is held while the first is open (it gets no answer in this time).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second read the report while the first held it"
    );
    assert!(
        store::record(
            &mut first,
            &assessment(id, 1, Decision::Monitor, None),
            TriageState::Monitoring
        )
        .await
        .unwrap()
    );
    first.commit().await.unwrap();
    assert_eq!(
        second.await.unwrap(),
        1,
        "the second sees the first's assessment"
    );
}

on_both_backends!(
    reports_follow_their_latest_assessment,
    assessments_of_one_report_wait_for_each_other,
);
