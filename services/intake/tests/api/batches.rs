//! Group commit under pressure. The writers are held on a lock so that a batch surely
//! forms: a submission the database refuses fails alone; a batch whose outcome is not
//! known to be "nothing written" is not retried row by row, and its callers' retries with
//! their keys store each report once.

use custos_intake::{
    report::{Details, Kind, Medium, NewReport, RiskToOthers},
    store::{self, ListFilter, Store, Submission, Submitted},
};
use custos_kit::{outbox::NewEvent, storage::DbTime};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use sqlx::{Connection, Executor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{common::*, consumer::eventually};

fn anonymous_report() -> NewReport {
    NewReport {
        kind: Kind::Weakness,
        details: Details {
            category: "human_error".into(),
            medium: Medium::Electronic,
            data_involved: "files".into(),
            risk_to_others: Some(RiskToOthers::Unknown),
            risk_details: String::new(),
            incident_location: String::new(),
            inventory_numbers: vec![],
            occurred_at: None,
            affected_location: String::new(),
            circumstances: "open share".into(),
            symptoms: String::new(),
            personal_information: false,
            malware_suspected: false,
        },
        contact: None,
    }
}

fn submission(key: &str) -> Submission {
    let id = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    Submission {
        id,
        report: anonymous_report(),
        submitted_by: None,
        submitted_at: DbTime::new(now),
        reference_prefix: "SIR-2026-".into(),
        idempotency_hash: key.as_bytes().to_vec(),
        request_hash: vec![7],
        receipt_hash: Some(id.as_bytes().to_vec()),
        event: NewEvent::anonymous(id, "", now, &pb::ReportSubmitted::default()),
    }
}

/// Holds the reports table so that the submission writers wait.
enum Hold {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Hold {
    async fn take(intake: &TestIntake) -> Hold {
        match intake.database.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(intake.database.url())
                    .await
                    .unwrap();
                conn.execute("BEGIN").await.unwrap();
                let lock = format!(
                    "LOCK TABLE \"{}\".reports IN ACCESS EXCLUSIVE MODE",
                    intake.database.schema()
                );
                conn.execute(sqlx::AssertSqlSafe(lock)).await.unwrap();
                Hold::Postgres(conn)
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(intake.database.url())
                    .await
                    .unwrap();
                conn.execute("BEGIN IMMEDIATE").await.unwrap();
                Hold::Sqlite(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            Hold::Postgres(mut conn) => conn.execute("COMMIT").await.map(|_| ()).unwrap(),
            Hold::Sqlite(mut conn) => conn.execute("COMMIT").await.map(|_| ()).unwrap(),
        }
    }
}

/// PostgreSQL backends of this test's schema waiting for the reports table.
async fn waiting(intake: &TestIntake) -> Vec<i32> {
    let admin = sqlx::PgPool::connect(intake.database.url()).await.unwrap();
    sqlx::query_scalar(
        "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT l.granted AND c.relname = 'reports' AND n.nspname = $1",
    )
    .bind(intake.database.schema())
    .fetch_all(&admin)
    .await
    .unwrap()
}

type Call = tokio::task::JoinHandle<Result<Submitted, custos_intake::error::IntakeError>>;

fn spawn(store: &Store, s: Submission) -> Call {
    let store = store.clone();
    tokio::spawn(async move { store.submit(s).await })
}

/// Occupies every writer with a one-report batch stuck behind the hold.
async fn occupy_writers(intake: &TestIntake, store: &Store) -> Vec<Call> {
    let writers = match intake.database.backend {
        Backend::Postgres => 2,
        Backend::Sqlite => 1,
    };
    let mut calls = Vec::new();
    for i in 0..writers {
        calls.push(spawn(store, submission(&format!("blocker-{i}-0123456789"))));
        eventually("a writer took the blocker", async || {
            store.queued_submissions() == 0
                && (intake.database.backend == Backend::Sqlite
                    || waiting(intake).await.len() == i + 1)
        })
        .await;
    }
    calls
}

/// A submission that breaks a constraint at the database (a receipt already held by
/// another report) fails alone: the batch it was written in is retried report by report,
/// the others are stored, and it leaves nothing behind.
async fn a_refused_submission_fails_alone_in_its_batch(backend: Backend) {
    capture_logs();
    let intake = TestIntake::start(backend).await;
    let store = Store::new(intake.db.clone());
    let first = submission("first-0123456789abcdef");
    let taken_receipt = first.receipt_hash.clone();
    store.submit(first).await.unwrap();

    let hold = Hold::take(&intake).await;
    let blockers = occupy_writers(&intake, &store).await;
    let mut calls = Vec::new();
    for i in 0..30 {
        let mut s = submission(&format!("batch-{i}-0123456789abcdef"));
        if i == 15 {
            s.receipt_hash = taken_receipt.clone();
        }
        calls.push((i == 15, spawn(&store, s)));
    }
    eventually("the submissions queued up behind the writers", async || {
        store.queued_submissions() == 30
    })
    .await;
    hold.release().await;

    for blocker in blockers {
        assert!(matches!(blocker.await.unwrap(), Ok(Submitted::Created(_))));
    }
    for (poisoned, call) in calls {
        let outcome = call.await.unwrap();
        if poisoned {
            assert!(outcome.is_err(), "the duplicate receipt is refused");
        } else {
            assert!(matches!(outcome, Ok(Submitted::Created(_))), "{outcome:?}");
        }
    }
    assert!(
        captured_logs().contains("a batch of submissions was refused whole"),
        "the refused submission shared a batch with others"
    );
    let stored = store::list(
        intake.db.read().await.unwrap(),
        &ListFilter::default(),
        None,
        100,
    )
    .await
    .unwrap();
    let writers = if backend == Backend::Postgres { 2 } else { 1 };
    assert_eq!(stored.len(), 1 + writers + 29);
}

on_both_backends!(a_refused_submission_fails_alone_in_its_batch);

/// A batch that fails for a reason that does not prove nothing was written (here: its
/// statement cancelled) is not retried report by report; its callers hear UNAVAILABLE
/// (the outcome is not known), and their retries with the same keys store each report
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_of_unknown_outcome_is_not_retried_row_by_row() {
    let intake = TestIntake::start(Backend::Postgres).await;
    let store = Store::new(intake.db.clone());
    let admin = sqlx::PgPool::connect(intake.database.url()).await.unwrap();
    let cancel = async |pids: Vec<i32>| {
        for pid in pids {
            sqlx::query("SELECT pg_cancel_backend($1)")
                .bind(pid)
                .execute(&admin)
                .await
                .unwrap();
        }
    };
    let hold = Hold::take(&intake).await;
    let blockers = occupy_writers(&intake, &store).await;
    let keys: Vec<String> = (0..10)
        .map(|i| format!("retry-{i}-0123456789abcdef"))
        .collect();
    let calls: Vec<Call> = keys.iter().map(|k| spawn(&store, submission(k))).collect();
    eventually("queued", async || store.queued_submissions() == 10).await;
    cancel(waiting(&intake).await).await;
    for blocker in blockers {
        assert!(blocker.await.unwrap().is_err());
    }
    // One writer took all ten as one batch; it waits for the hold in turn.
    eventually("the batch of ten waits", async || {
        store.queued_submissions() == 0 && waiting(&intake).await.len() == 1
    })
    .await;
    cancel(waiting(&intake).await).await;
    hold.release().await;
    for call in calls {
        let err = call.await.unwrap().expect_err("the cancelled batch fails");
        // The outcome is not known to be "nothing written": retry, with the key.
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert_eq!(
            custos_kit::error::status_reason(&status).unwrap().0,
            "OUTCOME_UNKNOWN"
        );
    }
    let stored = |store: &Store| {
        let db = store.db().clone();
        async move {
            store::list(db.read().await.unwrap(), &ListFilter::default(), None, 100)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(stored(&store).await, 0, "nothing was written");
    for key in &keys {
        assert!(matches!(
            store.submit(submission(key)).await,
            Ok(Submitted::Created(_))
        ));
        assert!(
            matches!(
                store.submit(submission(key)).await,
                Ok(Submitted::Existing(_))
            ),
            "a second retry finds the report"
        );
    }
    assert_eq!(stored(&store).await, 10, "each report once");
}
