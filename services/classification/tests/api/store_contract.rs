//! The triage store's contract, on both backends: what each function promises, including
//! the cases a feed consumer meets out of order.

use custos_classification::{
    ClassificationSettings,
    report::{Kind, Medium},
    store::{self, Amendment, NewEntry, Page, TriageFilter},
};
use custos_kit::storage::{Db, DbTime};
use custos_testing::{Backend, TestDatabase, on_both_backends};
use uuid::Uuid;

pub async fn db(backend: Backend) -> (TestDatabase, Db) {
    let database = TestDatabase::new(backend).await;
    let db = Db::connect(
        &database.config(),
        "classification",
        <custos_classification::Classification as custos_kit::service::Service>::migrations(),
    )
    .await
    .unwrap();
    (database, db)
}

pub fn at(minutes: i64) -> DbTime {
    DbTime::new(time::OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(1_000_000 + minutes))
}

pub fn entry(n: i64, kind: Kind, category: &str, medium: Medium, personal: bool) -> NewEntry {
    NewEntry {
        report_id: Uuid::now_v7(),
        reference: format!("SIR-2026-{n:06}"),
        kind,
        category: category.into(),
        medium,
        personal_information: personal,
        malware_suspected: false,
        anonymous: false,
        senior_notice: personal,
        occurred_at: None,
        submitted_at: at(n),
        match_keys: vec![],
    }
}

pub async fn queue(db: &Db, e: &NewEntry) {
    let mut tx = db.begin().await.unwrap();
    store::queue(&mut tx, e).await.unwrap();
    tx.commit().await.unwrap();
}

async fn refs(db: &Db, filter: &TriageFilter) -> Vec<String> {
    let conn = db.read().await.unwrap();
    store::list(conn, filter, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.reference)
        .collect()
}

async fn queueing_is_idempotent_and_amendments_never_go_back(backend: Backend) {
    let (_d, db) = db(backend).await;
    let e = entry(
        1,
        Kind::Event,
        "malware_infection",
        Medium::Electronic,
        false,
    );
    queue(&db, &e).await;
    // A second application of the same submission changes nothing.
    queue(
        &db,
        &NewEntry {
            category: "other".into(),
            ..e.clone()
        },
    )
    .await;
    let row = store::entry(db.read().await.unwrap(), e.report_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.category, "malware_infection");
    assert_eq!((row.report_revision, row.follow_up_count), (1, 0));
    assert_eq!(row.last_activity_at, e.submitted_at);

    let amend = |revision: i32, category: &str, minute: i64| Amendment {
        report_id: e.report_id,
        revision,
        category: category.into(),
        medium: Medium::Paper,
        personal_information: true,
        senior_notice: true,
        malware_suspected: None,
        occurred_at: None,
        match_keys: None,
        at: at(minute),
    };
    let mut tx = db.begin().await.unwrap();
    assert!(
        store::amend(&mut tx, &amend(3, "unauthorised_access", 10))
            .await
            .unwrap()
            .found
    );
    // Revision 2 arrives after 3 (a parked event replayed late): the entry keeps 3.
    assert!(
        store::amend(&mut tx, &amend(2, "stale", 5))
            .await
            .unwrap()
            .found,
        "found, not applied"
    );
    let follow_up = Uuid::now_v7();
    for _ in 0..2 {
        // The same follow-up twice (a replayed event): counted once.
        assert!(
            store::add_follow_up(&mut tx, e.report_id, follow_up, at(4))
                .await
                .unwrap()
                .found
        );
    }
    tx.commit().await.unwrap();
    let row = store::entry(db.read().await.unwrap(), e.report_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.category, "unauthorised_access");
    assert_eq!(row.medium, Medium::Paper);
    assert!(row.personal_information && row.senior_notice);
    assert_eq!((row.report_revision, row.follow_up_count), (3, 1));
    assert_eq!(row.last_activity_at, at(10), "activity never moves back");
    assert!(
        !row.malware_suspected,
        "not named by the amendment: unchanged"
    );

    // An amendment that names malware and the time of the event changes them; one that
    // does not name them leaves them.
    let mut tx = db.begin().await.unwrap();
    let named = Amendment {
        malware_suspected: Some(true),
        occurred_at: Some(Some(at(-30))),
        ..amend(4, "unauthorised_access", 11)
    };
    assert!(store::amend(&mut tx, &named).await.unwrap().found);
    assert!(
        store::amend(&mut tx, &amend(5, "unauthorised_access", 12))
            .await
            .unwrap()
            .found
    );
    tx.commit().await.unwrap();
    let row = store::entry(db.read().await.unwrap(), e.report_id)
        .await
        .unwrap()
        .unwrap();
    assert!(row.malware_suspected);
    assert_eq!(row.occurred_at, Some(at(-30)));
    assert_eq!(row.report_revision, 5);
    let mut tx = db.begin().await.unwrap();
    let cleared = Amendment {
        occurred_at: Some(None),
        ..amend(6, "unauthorised_access", 13)
    };
    assert!(store::amend(&mut tx, &cleared).await.unwrap().found);
    tx.commit().await.unwrap();
    let row = store::entry(db.read().await.unwrap(), e.report_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.occurred_at, None, "an amendment may clear it");
    assert!(row.malware_suspected);

    // Events about a report that is not queued are reported, not lost silently.
    let mut tx = db.begin().await.unwrap();
    let missing = Amendment {
        report_id: Uuid::now_v7(),
        ..amend(2, "x", 1)
    };
    assert!(!store::amend(&mut tx, &missing).await.unwrap().found);
    assert!(
        !store::add_follow_up(&mut tx, missing.report_id, Uuid::now_v7(), at(1))
            .await
            .unwrap()
            .found
    );
    tx.commit().await.unwrap();

    // The submission applied again (a feed replayed from the start) does not undo the
    // amendment.
    queue(&db, &e).await;
    let row = store::entry(db.read().await.unwrap(), e.report_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.category, "unauthorised_access");
    assert_eq!((row.report_revision, row.follow_up_count), (6, 1));
    assert!(row.malware_suspected, "amended, not reverted");
    assert_eq!(row.occurred_at, None, "amended, not reverted");
}

/// Amendments through the handler: an intake that publishes the report's state sets it,
/// an earlier intake whose events carry none of it leaves it as it was.
async fn amendments_from_old_and_new_intakes(backend: Backend) {
    use custos_classification::intake_feed::IntakeEvents;
    use custos_kit::consumer::EventHandler;
    use custos_proto::{common::v1::Event, intake::v1 as intake, prost_types::Any};
    let (_d, db) = db(backend).await;
    let e = entry(
        1,
        Kind::Event,
        "malware_infection",
        Medium::Electronic,
        false,
    );
    queue(&db, &e).await;
    let apply = |revision: i32, malware: Option<bool>| {
        let db = db.clone();
        let report_id = e.report_id;
        async move {
            let payload = intake::ReportAmended {
                revision,
                changed_fields: vec!["details.malware_suspected".into()],
                category: "malware_infection".into(),
                medium: 1,
                personal_information: false,
                requires_senior_management_notice: false,
                malware_suspected: malware,
                occurred_at: None,
                match_keys: None,
            };
            let event = Event {
                event_id: Uuid::now_v7().to_string(),
                event_type: "custos.intake.v1.ReportAmended".into(),
                occurred_at: Some(custos_kit::time_fmt::to_timestamp(
                    at(revision.into()).get(),
                )),
                aggregate_id: report_id.to_string(),
                aggregate_reference: "SIR-2026-000001".into(),
                payload: Some(Any::from_msg(&payload).unwrap()),
                ..Default::default()
            };
            let mut tx = db.begin().await.unwrap();
            IntakeEvents {
                series: ClassificationSettings::default().series(),
            }
            .handle(&mut tx, &event)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            store::entry(db.read().await.unwrap(), report_id)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let row = apply(2, Some(true)).await;
    assert!(row.malware_suspected);
    assert_eq!(
        row.occurred_at, None,
        "the report as it now stands has none"
    );
    let row = apply(3, None).await;
    assert!(
        row.malware_suspected,
        "an earlier intake's event says nothing of it"
    );
    assert_eq!(row.report_revision, 3);
    let row = apply(4, Some(false)).await;
    assert!(!row.malware_suspected);
}

async fn the_queue_is_listed_oldest_first_by_any_filter(backend: Backend) {
    let (_d, db) = db(backend).await;
    use Kind::{Event, Weakness};
    use Medium::{Electronic, Paper};
    let entries = [
        entry(5, Event, "malware_infection", Electronic, false),
        entry(1, Weakness, "application_malfunction", Electronic, false),
        entry(3, Event, "malware_infection", Paper, true),
        entry(2, Event, "equipment_theft_or_loss", Paper, true),
        entry(4, Weakness, "malware_infection", Electronic, true),
    ];
    for e in &entries {
        queue(&db, e).await;
    }
    let r = |ns: &[i64]| -> Vec<String> { ns.iter().map(|n| format!("SIR-2026-{n:06}")).collect() };
    assert_eq!(
        refs(&db, &TriageFilter::default()).await,
        r(&[1, 2, 3, 4, 5])
    );
    let f = |f: TriageFilter| f;
    let cases = [
        (
            f(TriageFilter {
                kind: Some(Event),
                ..Default::default()
            }),
            r(&[2, 3, 5]),
        ),
        (
            f(TriageFilter {
                categories: vec!["malware_infection".into()],
                ..Default::default()
            }),
            r(&[3, 4, 5]),
        ),
        (
            f(TriageFilter {
                medium: Some(Paper),
                ..Default::default()
            }),
            r(&[2, 3]),
        ),
        (
            f(TriageFilter {
                categories: vec![
                    "equipment_theft_or_loss".into(),
                    "application_malfunction".into(),
                ],
                ..Default::default()
            }),
            r(&[1, 2]),
        ),
        (
            f(TriageFilter {
                personal_information: Some(false),
                ..Default::default()
            }),
            r(&[1, 5]),
        ),
        (
            f(TriageFilter {
                submitted_after: Some(at(2)),
                submitted_before: Some(at(4)),
                ..Default::default()
            }),
            r(&[2, 3]),
        ),
        (
            f(TriageFilter {
                kind: Some(Event),
                categories: vec!["malware_infection".into()],
                medium: Some(Electronic),
                personal_information: Some(false),
                ..Default::default()
            }),
            r(&[5]),
        ),
        (
            f(TriageFilter {
                kind: Some(Weakness),
                categories: vec!["malware_infection".into()],
                personal_information: Some(true),
                ..Default::default()
            }),
            r(&[4]),
        ),
        (
            f(TriageFilter {
                categories: vec!["malware_infection".into()],
                medium: Some(Paper),
                personal_information: Some(true),
                ..Default::default()
            }),
            r(&[3]),
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(refs(&db, &filter).await, expected, "{filter:?}");
    }

    // Reports submitted in the same minute (times are kept to the minute): pages still
    // hold each once, in id order.
    let mut same_minute: Vec<NewEntry> = (10..15)
        .map(|n| NewEntry {
            submitted_at: at(6),
            ..entry(n, Event, "tied", Electronic, n % 2 == 0)
        })
        .collect();
    same_minute.reverse();
    for e in &same_minute {
        queue(&db, e).await;
    }
    same_minute.sort_by_key(|e| e.report_id);
    let tied: Vec<String> = same_minute.iter().map(|e| e.reference.clone()).collect();

    // Pages of two, strictly after the last of the page before.
    let pages = |filter: TriageFilter| {
        let db = db.clone();
        async move {
            let mut after: Option<Page> = None;
            let mut seen = Vec::new();
            loop {
                let rows = store::list(db.read().await.unwrap(), &filter, after, 2)
                    .await
                    .unwrap();
                if rows.is_empty() {
                    break;
                }
                let last = rows.last().unwrap();
                after = Some(Page {
                    submitted_at: last.submitted_at,
                    report_id: last.report_id,
                });
                seen.extend(rows.into_iter().map(|r| r.reference));
            }
            seen
        }
    };
    let mut expected = r(&[1, 2, 3, 4, 5]);
    expected.extend(tied.clone());
    assert_eq!(pages(TriageFilter::default()).await, expected);
    let mut expected = r(&[2, 3, 5]);
    expected.extend(tied.clone());
    assert_eq!(
        pages(TriageFilter {
            kind: Some(Event),
            ..Default::default()
        })
        .await,
        expected
    );
    // A category with two of the three routing facts is two branches (one per value of
    // the open fact) merged: pages still hold each once, in order.
    assert_eq!(
        pages(TriageFilter {
            categories: vec!["tied".into()],
            kind: Some(Event),
            medium: Some(Electronic),
            ..Default::default()
        })
        .await,
        tied
    );
}

on_both_backends!(
    amendments_from_old_and_new_intakes,
    queueing_is_idempotent_and_amendments_never_go_back,
    the_queue_is_listed_oldest_first_by_any_filter,
);

/// SQLite's planner has statistics from the start (and every ten minutes): without them
/// it takes any index a statement's first column names and sorts what it finds.
#[tokio::test]
async fn sqlite_planner_statistics_are_kept() {
    let (_d, db) = db(Backend::Sqlite).await;
    let mut conn = db.read().await.unwrap();
    let tables: i64 = custos_kit::with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    });
    assert_eq!(tables, 1, "ANALYZE ran at start");
}
