//! The assessment store's contract, on both backends: incidents numbered in order, a
//! report's link following its latest assessment, the history newest first, and the
//! database refusing a second assessment with the same sequence.

use custos_classification::{
    assessment::{Decision, DimensionImpact, GivenFigures, Impact, IncidentState},
    matrix::Level,
    report::{Kind, Medium, TriageState},
    store::{self, IncidentKey, NewAssessment, NewIncident},
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

pub(crate) async fn declare(db: &Db, title: &str) -> (Uuid, String) {
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
            personal_data: false,
            paper_records: false,
        },
        "INC-2026-",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (id, reference)
}

pub(crate) fn assessment(
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

pub(crate) async fn record(
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
    let by_ref = store::hold_incident(&mut tx, &IncidentKey::Reference(second_ref.clone()))
        .await
        .unwrap()
        .unwrap();
    let by_id = store::hold_incident(&mut tx, &IncidentKey::Id(two))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ref, by_id);
    assert_eq!((by_id.id, by_id.state), (two, IncidentState::Open));
    assert!(
        store::hold_incident(&mut tx, &IncidentKey::Reference("INC-2026-000003".into()))
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

/// Two assessments of one report are decided one after the other: on PostgreSQL the
/// first holds the report (a second that will not wait cannot read it for assessing);
/// on SQLite the second cannot begin while the first is open (one writer). After the
/// first commits, the second sees its sequence.
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
    if backend == Backend::Postgres {
        // A second transaction that will not wait cannot read the report for assessing
        // while the first holds it (without `FOR UPDATE` it would read it at once).
        let mut other = db.begin().await.unwrap();
        custos_kit::with_conn!(&mut other, c => {
            sqlx::query("SET LOCAL lock_timeout = '50ms'").execute(&mut *c).await.unwrap();
        });
        assert!(
            store::assessable(&mut other, id).await.is_err(),
            "the second read the report while the first held it"
        );
    }
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
    let mut second = db.begin().await.unwrap();
    let seen = store::assessable(&mut second, id).await.unwrap().unwrap();
    second.commit().await.unwrap();
    assert_eq!(
        seen.assessment_sequence, 1,
        "the second sees the first's assessment"
    );
}

/// New information (an amendment, a follow-up) brings a monitored or dismissed report back
/// to the queue, and says so; one in an incident stays there. An anonymous report keeps no
/// match keys, whatever an event carries.
async fn new_information_requeues_and_anonymous_reports_keep_no_keys(backend: Backend) {
    use custos_classification::store::Amendment;
    let (_database, db) = db(backend).await;
    let named = NewEntryWithKeys::entry(1, false);
    let anonymous = NewEntryWithKeys::entry(2, true);
    queue(&db, &named).await;
    queue(&db, &anonymous).await;
    let id = named.report_id;
    let rows = store::related(
        db.read().await.unwrap(),
        id,
        time::Duration::days(3),
        10,
        false,
    )
    .await
    .unwrap()
    .unwrap()
    .1;
    assert!(
        rows.iter()
            .all(|r| r.report_id != anonymous.report_id || r.match_key.is_none()),
        "the anonymous report shares no key: {rows:?}"
    );

    let follow_up = async |n: u8| {
        let mut tx = db.begin().await.unwrap();
        let applied = store::add_follow_up(&mut tx, id, Uuid::from_bytes([n; 16]), at(10))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        applied
            .requeued
            .map(|(sequence, _, anonymous)| (sequence, anonymous))
    };
    let amend = async |revision: i32| {
        let mut tx = db.begin().await.unwrap();
        let applied = store::amend(
            &mut tx,
            &Amendment {
                report_id: id,
                revision,
                category: "malware_infection".into(),
                medium: Medium::Electronic,
                personal_information: false,
                senior_notice: false,
                malware_suspected: None,
                occurred_at: None,
                match_keys: None,
                at: at(11),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        applied
            .requeued
            .map(|(sequence, _, anonymous)| (sequence, anonymous))
    };
    let state = async || {
        store::entry(db.read().await.unwrap(), id)
            .await
            .unwrap()
            .unwrap()
            .state
    };

    assert_eq!(follow_up(1).await, None, "waiting already");
    assert!(
        record(
            &db,
            &assessment(id, 1, Decision::Monitor, None),
            TriageState::Monitoring
        )
        .await
        .unwrap()
    );
    assert_eq!(follow_up(2).await, Some((1, false)));
    assert_eq!(state().await, TriageState::AwaitingAssessment);
    assert_eq!(follow_up(2).await, None, "the same follow-up again");
    assert!(
        record(
            &db,
            &assessment(id, 2, Decision::Dismiss, None),
            TriageState::Dismissed
        )
        .await
        .unwrap()
    );
    assert_eq!(amend(2).await, Some((2, false)));
    assert_eq!(amend(2).await, None, "the same amendment again");
    let (incident, _) = declare(&db, "held").await;
    assert!(
        record(
            &db,
            &assessment(id, 3, Decision::LinkIncident, Some(incident)),
            TriageState::Incident
        )
        .await
        .unwrap()
    );
    assert_eq!(amend(3).await, None);
    assert_eq!(follow_up(3).await, None);
    assert_eq!(
        state().await,
        TriageState::Incident,
        "an incident's report stays there"
    );
}

/// An entry with one inventory key, named or anonymous.
struct NewEntryWithKeys;

impl NewEntryWithKeys {
    fn entry(n: i64, anonymous: bool) -> store::NewEntry {
        store::NewEntry {
            anonymous,
            match_keys: vec!["i:AAAAAAAAAAAAAAAAAAAAAA".into()],
            ..entry(
                n,
                Kind::Event,
                "malware_infection",
                Medium::Electronic,
                false,
            )
        }
    }
}

on_both_backends!(
    new_information_requeues_and_anonymous_reports_keep_no_keys,
    reports_follow_their_latest_assessment,
    assessments_of_one_report_wait_for_each_other,
);
