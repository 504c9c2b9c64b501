//! Feeds across a restore: a cursor that belongs to another history of the feed is
//! refused with FAILED_PRECONDITION / CURSOR_EXPIRED, never silently resumed, and the
//! consumer stops until an operator resets it; after the reset it replays without
//! double effect. A database moved to a cluster whose transaction ids are behind starts
//! a new feed epoch, so new events still come after old ones.

use std::collections::HashSet;

use custos_kit::{consumer::ConsumerState, error::status_reason, outbox::Cursor, with_conn};
use custos_proto::common::v1::{
    SubscribeRequest, event_feed_service_client::EventFeedServiceClient,
};
use custos_testing::{Backend, TestDatabase, on_both_backends};
use tonic::Code;

use crate::{
    common::*,
    consumer::{eventually, quick, start, tally_db},
    tally,
};

/// A backup of intake's database, restored later.
enum Backup {
    Sqlite(std::path::PathBuf),
    Postgres(std::path::PathBuf),
}

async fn back_up(intake: &TestIntake, dir: &std::path::Path) -> Backup {
    match intake.database.backend {
        Backend::Sqlite => {
            let file = dir.join("backup.db");
            let sql = format!("VACUUM INTO '{}'", file.display());
            let mut conn = intake.db.read().await.unwrap();
            with_conn!(&mut conn, c => {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *c).await.unwrap();
            });
            Backup::Sqlite(file)
        }
        Backend::Postgres => {
            let file = dir.join("backup.dump");
            let status = std::process::Command::new("pg_dump")
                .args(["--format=custom", "--schema", intake.database.schema()])
                .arg("--file")
                .arg(&file)
                .arg(intake.database.url())
                .status()
                .expect("pg_dump (PostgreSQL's client tools) is installed");
            assert!(status.success(), "pg_dump failed");
            Backup::Postgres(file)
        }
    }
}

async fn restore(database: &TestDatabase, backup: &Backup) {
    match backup {
        Backup::Sqlite(file) => {
            let path = database.url().trim_start_matches("sqlite://").to_owned();
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
            std::fs::copy(file, &path).unwrap();
        }
        Backup::Postgres(file) => {
            let admin = sqlx::PgPool::connect(database.url()).await.unwrap();
            let drop = format!("DROP SCHEMA \"{}\" CASCADE", database.schema());
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&admin)
                .await
                .unwrap();
            let status = std::process::Command::new("pg_restore")
                .arg("--dbname")
                .arg(database.url())
                .arg(file)
                .status()
                .expect("pg_restore is installed");
            assert!(status.success(), "pg_restore failed");
        }
    }
}

/// Restarts intake on the same port, on the same database.
async fn restart(intake: TestIntake, between: impl AsyncFnOnce(&TestDatabase)) -> TestIntake {
    let addr = intake.addr();
    let TestIntake {
        running, database, ..
    } = intake;
    running.stop().await.unwrap();
    between(&database).await;
    let mut config = config(&database);
    config.server.listen = addr;
    TestIntake::start_on(database, config).await
}

async fn subscribe_status(intake: &TestIntake, cursor: &str) -> tonic::Status {
    EventFeedServiceClient::new(custos_testing::authed(
        intake.addr(),
        "tally",
        &[custos_kit::auth::Role::Service],
    ))
    .subscribe(SubscribeRequest {
        after_cursor: cursor.into(),
    })
    .await
    .expect_err("the cursor is refused")
}

async fn a_cursor_from_before_a_restore_is_refused(backend: Backend) {
    capture_logs();
    let intake = TestIntake::start(backend).await;
    let (_tally_database, db) = tally_db(backend).await;
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        submit_event(&intake, "alex").await;
    }
    let backup = back_up(&intake, dir.path()).await;
    for _ in 0..2 {
        submit_event(&intake, "alex").await;
    }
    let (consumer, stop, task) = start(&db, intake.addr(), "a", Default::default(), quick());
    eventually("four applied", async || {
        tally::applied(db.read().await.unwrap()).await.len() == 4
    })
    .await;
    let cursor = consumer.cursor().await.unwrap();

    let intake = restart(intake, async |database| restore(database, &backup).await).await;
    eventually("the consumer stopped", async || {
        matches!(consumer.state(), ConsumerState::Stopped(_))
    })
    .await;
    let ConsumerState::Stopped(why) = consumer.state() else {
        unreachable!()
    };
    assert!(why.contains("restored"), "{why}");
    assert!(
        captured_logs()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("STOPPED")),
        "the stop is logged loudly"
    );
    let refused = subscribe_status(&intake, &cursor).await;
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(status_reason(&refused).unwrap().0, "CURSOR_EXPIRED");
    assert!(
        refused.message().contains("beyond"),
        "{}",
        refused.message()
    );

    // The restored feed issues new events at the positions the cursor passed: still
    // refused (it names an event this history does not hold), nothing skipped.
    for _ in 0..2 {
        submit_event(&intake, "alex").await;
    }
    let refused = subscribe_status(&intake, &cursor).await;
    assert_eq!(status_reason(&refused).unwrap().0, "CURSOR_EXPIRED");
    assert_eq!(
        tally::applied(db.read().await.unwrap()).await.len(),
        4,
        "a stopped consumer applies nothing"
    );

    // The operator replays from the start: what was applied is recognised, the new
    // history's events are applied.
    consumer.reset("").await.unwrap();
    eventually("the new events applied", async || {
        tally::applied(db.read().await.unwrap()).await.len() == 6
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let applied = tally::applied(db.read().await.unwrap()).await;
    let distinct: HashSet<_> = applied.iter().map(|a| &a.1).collect();
    assert_eq!(distinct.len(), 6, "each event once");
}

on_both_backends!(a_cursor_from_before_a_restore_is_refused);

/// A schema moved to a cluster whose transaction counter is behind the outbox's (here:
/// the outbox's txids pushed far ahead while intake is down, as a move from a busier
/// cluster leaves them): intake starts a new feed epoch, and a consumer standing on the
/// last old event receives the new ones instead of finding them behind its cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_move_to_a_cluster_behind_starts_a_new_epoch() {
    const AHEAD: i64 = 1_000_000_000_000;
    let intake = TestIntake::start(Backend::Postgres).await;
    let (_tally_database, db) = tally_db(Backend::Postgres).await;
    for _ in 0..2 {
        submit_event(&intake, "alex").await;
    }
    let (consumer, stop, task) = start(&db, intake.addr(), "a", Default::default(), quick());
    eventually("two applied", async || {
        tally::applied(db.read().await.unwrap()).await.len() == 2
    })
    .await;
    let mut cursor = Cursor::parse(&consumer.cursor().await.unwrap()).unwrap();
    let intake = restart(intake, async |database| {
        let admin = sqlx::PgPool::connect(database.url()).await.unwrap();
        let shift = format!(
            "UPDATE \"{}\".outbox SET txid = txid + {AHEAD}",
            database.schema()
        );
        sqlx::query(sqlx::AssertSqlSafe(shift))
            .execute(&admin)
            .await
            .unwrap();
    })
    .await;
    // The consumer's cursor was issued by the old cluster, in its numbering.
    cursor.txid += AHEAD;
    consumer.reset(&cursor.to_string()).await.unwrap();
    for _ in 0..2 {
        submit_event(&intake, "alex").await;
    }
    eventually("the new events reached the consumer", async || {
        tally::applied(db.read().await.unwrap()).await.len() == 4
    })
    .await;
    assert_eq!(consumer.state(), ConsumerState::Running);
    let new = Cursor::parse(&consumer.cursor().await.unwrap()).unwrap();
    assert_eq!(new.epoch, 1, "a new epoch began");
    stop.cancel();
    task.await.unwrap();
}
