//! An incident's report count, kept by the database (migration 1010): it follows every
//! link, move and unlink on both backends, an upgrade counts the links made before it, and
//! a move holds its two incidents in id order (PostgreSQL), so that two opposite moves
//! wait for each other instead of deadlocking.

use custos_classification::{
    assessment::Decision,
    report::{Kind, Medium, TriageState},
    store::{self, IncidentFilter, IncidentKey},
};
use custos_kit::{
    storage::{Db, Dialect},
    with_conn,
};
use custos_proto::classification::v1::{self as pb, assess_report_request};
use custos_testing::{Backend, TestDatabase, on_both_backends};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::{
    assess::{advisor, request},
    assessment_store::{assessment, declare, record},
    common::*,
    incidents::{get, raise_from},
    store_contract::{db, entry, queue},
};

/// How many sessions wait for the session `$1` (a backend pid).
const WAITING_ON: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))";

async fn count(db: &Db, id: Uuid) -> i32 {
    store::incident_for(db.read().await.unwrap(), &IncidentKey::Id(id), "nobody")
        .await
        .unwrap()
        .expect("the incident")
        .row
        .report_count
}

async fn counts(db: &Db, ids: &[Uuid]) -> Vec<i32> {
    let mut all = Vec::new();
    for id in ids {
        all.push(count(db, *id).await);
    }
    all
}

/// The counts as a list shows them, in `ids`' order.
async fn listed_counts(db: &Db, ids: &[Uuid]) -> Vec<i32> {
    let rows = store::list_incidents(
        db.read().await.unwrap(),
        &IncidentFilter::default(),
        None,
        None,
        100,
    )
    .await
    .unwrap();
    ids.iter()
        .map(|id| rows.iter().find(|r| r.id == *id).unwrap().report_count)
        .collect()
}

async fn queued(db: &Db, n: i64) -> Uuid {
    let e = entry(
        n,
        Kind::Event,
        "malware_infection",
        Medium::Electronic,
        false,
    );
    queue(db, &e).await;
    e.report_id
}

/// Assessment `sequence` of `report`: linked to `incident`, or dismissed.
async fn assess(db: &Db, report: Uuid, sequence: i32, incident: Option<Uuid>) {
    let (decision, state) = match incident {
        Some(_) => (Decision::LinkIncident, TriageState::Incident),
        None => (Decision::Dismiss, TriageState::Dismissed),
    };
    let a = assessment(report, sequence, decision, incident);
    assert!(record(db, &a, state).await.unwrap());
}

async fn reports_are_counted_as_they_move(backend: Backend) {
    let (_database, db) = db(backend).await;
    let (one, _) = declare(&db, "one").await;
    let (two, _) = declare(&db, "two").await;
    let (a, b) = (queued(&db, 1).await, queued(&db, 2).await);
    assert_eq!(counts(&db, &[one, two]).await, [0, 0]);
    assess(&db, a, 1, Some(one)).await;
    assess(&db, b, 1, Some(one)).await;
    assert_eq!(counts(&db, &[one, two]).await, [2, 0]);
    // Moved to the other incident.
    assess(&db, a, 2, Some(two)).await;
    assert_eq!(counts(&db, &[one, two]).await, [1, 1]);
    // Linked again to the incident it is in: still counted once.
    assess(&db, a, 3, Some(two)).await;
    assert_eq!(counts(&db, &[one, two]).await, [1, 1]);
    // Dismissed: in no incident.
    assess(&db, b, 2, None).await;
    assert_eq!(counts(&db, &[one, two]).await, [0, 1]);
    assert_eq!(listed_counts(&db, &[one, two]).await, [0, 1]);
    // A link changed in place (no code does; an operator might) is counted too.
    let mut tx = db.begin().await.unwrap();
    with_conn!(&mut tx, c => {
        sqlx::query("UPDATE incident_reports SET incident_id = $1 WHERE report_id = $2")
            .bind(one)
            .bind(a)
            .execute(&mut *c)
            .await
            .unwrap();
    });
    tx.commit().await.unwrap();
    assert_eq!(counts(&db, &[one, two]).await, [1, 0]);
    if backend == Backend::Postgres {
        let mut tx = db.begin().await.unwrap();
        let truncated = with_conn!(&mut tx, c => {
            sqlx::query("TRUNCATE incident_reports")
                .execute(&mut *c)
                .await
                .err()
                .and_then(|e| e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()))
        });
        // object_not_in_prerequisite_state, as the guard raises it.
        assert_eq!(
            truncated.as_deref(),
            Some("55000"),
            "a truncate would leave every count wrong"
        );
    }
}

/// Takes the database back to where the previous version left it: no count column, no
/// trigger, migrations 1010 and 1011 not applied.
async fn undo_the_count(db: &Db) {
    let mut tx = db.begin().await.unwrap();
    with_conn!(&mut tx, c => {
        let sql = c.pick(
            "DROP TRIGGER incident_reports_counted ON incident_reports; \
             DROP TRIGGER incident_reports_counted_no_truncate ON incident_reports; \
             DROP FUNCTION incident_reports_count(); \
             DROP FUNCTION incident_reports_no_truncate(); \
             ALTER TABLE incidents DROP COLUMN report_count; \
             DELETE FROM _sqlx_migrations WHERE version IN (1010, 1011);",
            "DROP TRIGGER incident_reports_linked; \
             DROP TRIGGER incident_reports_unlinked; \
             DROP TRIGGER incident_reports_moved; \
             ALTER TABLE incidents DROP COLUMN report_count; \
             DELETE FROM _sqlx_migrations WHERE version IN (1010, 1011);",
        );
        sqlx::raw_sql(sql).execute(&mut *c).await.unwrap();
    });
    tx.commit().await.unwrap();
}

/// Closes `db` and connects again, as a new start does: the migrations not applied run.
async fn restart(db: Db, database: &TestDatabase) -> Db {
    db.close().await;
    let migrations =
        <custos_classification::Classification as custos_kit::service::Service>::migrations();
    Db::connect(&database.config(), "classification", migrations)
        .await
        .expect("the migrations apply")
}

async fn an_upgrade_counts_the_links_made_before_it(backend: Backend) {
    let (database, db) = db(backend).await;
    let (one, _) = declare(&db, "one").await;
    let (two, _) = declare(&db, "two").await;
    let (three, _) = declare(&db, "three").await;
    undo_the_count(&db).await;
    // Linked, moved and dismissed by the previous version, which kept no count.
    let (a, b, c) = (
        queued(&db, 1).await,
        queued(&db, 2).await,
        queued(&db, 3).await,
    );
    assess(&db, a, 1, Some(one)).await;
    assess(&db, b, 1, Some(one)).await;
    assess(&db, c, 1, Some(one)).await;
    assess(&db, c, 2, Some(two)).await;
    assess(&db, b, 2, None).await;
    let db = restart(db, &database).await;
    assert_eq!(counts(&db, &[one, two, three]).await, [1, 1, 0]);
    // And counts from then on.
    assess(&db, a, 2, Some(three)).await;
    assert_eq!(counts(&db, &[one, two, three]).await, [0, 1, 1]);
}

/// On PostgreSQL the count column and its trigger (1010) commit before the existing links
/// are counted (1011). Links removed in between take counts below zero, from the zero
/// 1010 starts them at: 1011 sets every count, those of incidents left with no link too.
/// A link change still in flight while 1011 runs is counted once, after it.
#[tokio::test]
async fn counts_changed_between_the_two_migrations_are_set_right() {
    let (database, db) = db(Backend::Postgres).await;
    let (one, _) = declare(&db, "one").await;
    let (two, _) = declare(&db, "two").await;
    let (a, b) = (queued(&db, 1).await, queued(&db, 2).await);
    assess(&db, a, 1, Some(one)).await;
    assess(&db, b, 1, Some(one)).await;
    // As 1010 leaves the register: every count zero, the trigger live, 1011 not applied.
    let mut tx = db.begin().await.unwrap();
    with_conn!(&mut tx, c => {
        sqlx::raw_sql(
            "UPDATE incidents SET report_count = 0; \
             DELETE FROM _sqlx_migrations WHERE version = 1011;",
        )
        .execute(&mut *c)
        .await
        .unwrap();
    });
    tx.commit().await.unwrap();
    // Meanwhile one report is dismissed and the other moved: `one` keeps none.
    assess(&db, a, 2, None).await;
    assess(&db, b, 2, Some(two)).await;
    assert_eq!(counts(&db, &[one, two]).await, [-2, 1]);
    // And while 1011 runs, a change of a link is in flight: `b` moves back to `one`.
    let connect = async || {
        let mut conn = PgConnection::connect(database.url()).await.unwrap();
        let path = format!("SET search_path = \"{}\"", database.schema());
        conn.execute(sqlx::AssertSqlSafe(path)).await.unwrap();
        conn
    };
    let mut holder = connect().await;
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("UPDATE incident_reports SET incident_id = $1 WHERE report_id = $2")
        .bind(one)
        .bind(b)
        .execute(&mut holder)
        .await
        .unwrap();
    let mut watcher = connect().await;
    // The change commits once 1011 is seen waiting for it.
    let commit_when_waited_for = async {
        eventually("1011 waits for the link change in flight", async || {
            let waiting: i64 = sqlx::query_scalar(WAITING_ON)
                .bind(holder_pid)
                .fetch_one(&mut watcher)
                .await
                .unwrap();
            waiting > 0
        })
        .await;
        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    };
    let (db, ()) = tokio::join!(restart(db, &database), commit_when_waited_for);
    assert_eq!(counts(&db, &[one, two]).await, [1, 0]);
}

/// The report that raised `incident` and the incident's id.
async fn raised(c: &TestClassification, n: i64) -> (pb::TriageEntry, Uuid) {
    let e = entry(
        n,
        Kind::Event,
        "loss_or_theft_of_data",
        Medium::Electronic,
        false,
    );
    let incident = raise_from(c, &e, &format!("Incident {n}")).await;
    let report = pb::TriageEntry {
        report_id: e.report_id.to_string(),
        report_revision: 1,
        category: e.category.clone(),
        ..Default::default()
    };
    (report, incident.id.parse().unwrap())
}

/// Moving a report locks its old incident (the count goes down) and its new one. Taken
/// target first, two opposite moves (A to B, B to A) could each hold one and wait for the
/// other. Here another transaction holds the lower of the two ids while a report moves
/// from it to the higher: the move must wait before it takes the higher one.
#[tokio::test]
async fn a_move_holds_its_two_incidents_in_id_order() {
    let c = TestClassification::start(Backend::Postgres).await;
    let (first, x) = raised(&c, 1).await;
    let (second, y) = raised(&c, 2).await;
    let (report, low, high) = if x < y { (first, x, y) } else { (second, y, x) };

    let mut holder = c.db.begin().await.unwrap();
    let holder_pid: i32 = with_conn!(&mut holder, h => {
        sqlx::query("SELECT id FROM incidents WHERE id = $1 FOR UPDATE")
            .bind(low)
            .execute(&mut *h)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *h).await.unwrap()
    });

    let mover = advisor(&c);
    let moving = tokio::spawn(async move {
        let mut mover = mover;
        mover
            .assess_report(request(
                &report,
                1,
                assess_report_request::Decision::LinkIncident(pb::LinkIncidentDecision {
                    incident_id: high.to_string(),
                }),
            ))
            .await
    });
    eventually("the move waits for the held incident", async || {
        let mut conn = c.db.read().await.unwrap();
        let waiting: i64 = with_conn!(&mut conn, r => {
            sqlx::query_scalar(WAITING_ON)
                .bind(holder_pid)
                .fetch_one(&mut *r)
                .await
                .unwrap()
        });
        waiting > 0
    })
    .await;

    // One statement on its own (its lock, if it gets one, ends with it).
    let mut probe = c.db.lookup().await.unwrap();
    let free = with_conn!(&mut probe, p => {
        sqlx::query("SELECT id FROM incidents WHERE id = $1 FOR UPDATE NOWAIT")
            .bind(high)
            .execute(&mut *p)
            .await
            .is_ok()
    });
    drop(probe);
    // Let the move finish before asserting, so that a failure does not leave it waiting.
    holder.commit().await.unwrap();
    let moved = moving.await.unwrap();
    assert!(
        free,
        "a move waiting for its lower incident must not hold its higher one"
    );
    moved.expect("the move completes");
    assert_eq!(counts(&c.db, &[low, high]).await, [0, 2]);
    let moved = get(
        &c,
        "sam",
        &[custos_kit::auth::Role::SecurityAdvisor],
        &high.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(moved.report_count, 2);
}

on_both_backends!(
    reports_are_counted_as_they_move,
    an_upgrade_counts_the_links_made_before_it,
);
