//! Intake's event feed: replay, resume, live delivery, heartbeats, events that commit out
//! of order, commits on another replica, and a consumer that crashes and resumes without
//! loss or double effect.

use std::{sync::Arc, time::Duration};

use custos_intake::Config;
use custos_kit::{
    auth::Role,
    consumer::{Consumer, EventHandler, FeedSource, HandlerError, Tx},
    outbox::{self, Cursor},
    storage::{Db, Migrations},
    with_pool, with_tx,
};
use custos_proto::common::v1::{
    Event, SubscribeRequest, SubscribeResponse, event_feed_service_client::EventFeedServiceClient,
    subscribe_response::Item,
};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, TestDatabase, on_both_backends};
use prost::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

async fn subscribe(intake: &TestIntake, after: &str) -> Streaming<SubscribeResponse> {
    EventFeedServiceClient::new(custos_testing::authed(
        intake.addr(),
        "classification",
        &[Role::Service],
    ))
    .subscribe(SubscribeRequest {
        after_cursor: after.into(),
    })
    .await
    .expect("subscribe")
    .into_inner()
}

async fn next_event(stream: &mut Streaming<SubscribeResponse>) -> Event {
    loop {
        let item = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        if let Some(Item::Event(e)) = item.item {
            return e;
        }
    }
}

async fn replay_resume_and_live_delivery(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut refs = Vec::new();
    for _ in 0..3 {
        refs.push(submit_event(&intake, "alex").await.reference);
    }
    let mut stream = subscribe(&intake, "").await;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(next_event(&mut stream).await);
    }
    assert_eq!(
        events
            .iter()
            .map(|e| e.aggregate_reference.clone())
            .collect::<Vec<_>>(),
        refs
    );
    let first = &events[0];
    assert_eq!(first.event_type, "custos.intake.v1.ReportSubmitted");
    assert_eq!(first.source, "intake");
    let payload =
        pb::ReportSubmitted::decode(first.payload.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(payload.category, "equipment_theft_or_loss");
    assert!(!payload.anonymous);

    // Live: a new report arrives on the open stream.
    let live = submit_event(&intake, "alex").await;
    assert_eq!(
        next_event(&mut stream).await.aggregate_reference,
        live.reference
    );

    // Resume after the second event: the third and the live one follow, nothing else.
    let mut resumed = subscribe(&intake, &events[1].cursor).await;
    assert_eq!(next_event(&mut resumed).await.event_id, events[2].event_id);
    assert_eq!(
        next_event(&mut resumed).await.aggregate_reference,
        live.reference
    );

    // Idle streams get heartbeats carrying the last cursor (heartbeat: 1 s in tests).
    let beat = loop {
        let item = tokio::time::timeout(WAIT, resumed.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(Item::Heartbeat(b)) = item.item {
            break b;
        }
    };
    assert!(!beat.cursor.is_empty());

    let err =
        EventFeedServiceClient::new(custos_testing::authed(intake.addr(), "c", &[Role::Service]))
            .subscribe(SubscribeRequest {
                after_cursor: "bogus".into(),
            })
            .await
            .unwrap_err();
    assert_eq!(
        custos_kit::error::status_violations(&err)[0].field,
        "after_cursor"
    );
}

/// PostgreSQL hands out ids at insert: a transaction holding the smaller position can
/// commit after a larger one is visible. The reader must wait for it, not skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_that_commit_out_of_order_are_not_skipped() {
    use sqlx::{Connection, PgConnection};
    let intake = TestIntake::start(Backend::Postgres).await;
    let url = intake.database.url().to_owned();
    let schema = intake.database.schema().to_owned();
    let connect = async || {
        let mut c = PgConnection::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET search_path TO \"{schema}\""
        )))
        .execute(&mut c)
        .await
        .unwrap();
        c
    };
    let (mut early, mut late) = (connect().await, connect().await);
    let append = |reference: &'static str| {
        outbox::NewEvent::new(
            uuid::Uuid::now_v7(),
            reference,
            time::OffsetDateTime::now_utc(),
            &pb::FollowUpAdded::default(),
        )
    };
    use custos_kit::outbox::OutboxWriter;
    // `late` takes its transaction id first, `early` inserts first and commits first.
    let mut late_tx = late.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *late_tx)
        .await
        .unwrap();
    let mut early_tx = early.begin().await.unwrap();
    early_tx.append_event(&append("EARLY")).await.unwrap();
    late_tx.append_event(&append("LATE")).await.unwrap();
    early_tx.commit().await.unwrap();

    let batch = outbox::read_after(&intake.db, Cursor::START, 100)
        .await
        .unwrap();
    assert!(
        batch.events.is_empty(),
        "EARLY must wait for the older transaction"
    );
    assert!(batch.held_back);

    let mut stream = subscribe(&intake, "").await;
    late_tx.commit().await.unwrap();
    intake.db.wake_outbox_readers();
    let first = next_event(&mut stream).await;
    let second = next_event(&mut stream).await;
    assert_eq!(
        [first.aggregate_reference, second.aggregate_reference],
        ["LATE", "EARLY"]
    );
    let batch = outbox::read_after(&intake.db, second.cursor.parse().unwrap(), 100)
        .await
        .unwrap();
    assert!(batch.events.is_empty() && !batch.held_back);
}

/// Replicas share one database. A report submitted on one replica reaches a subscriber
/// of another as it commits (LISTEN/NOTIFY between them), not at the next heartbeat's
/// re-read: heartbeats here are an hour apart, and after the first event the only way
/// the subscriber's replica hears of a commit is the notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_from_another_replica_arrive_as_they_commit() {
    let hourly_heartbeat = |c: &mut Config| c.server.feed_heartbeat_secs = 3600;
    let a = TestIntake::start_with(Backend::Postgres, hourly_heartbeat).await;
    let mut config = Config {
        server: custos_testing::server_config(),
        database: a.database.config(),
        auth: custos_testing::auth_config(),
        telemetry: custos_kit::config::TelemetryConfig::default(),
        intake: custos_intake::config::IntakeSettings::default(),
    };
    hourly_heartbeat(&mut config);
    let app = custos_intake::App::build(config)
        .await
        .expect("replica b starts");
    let b = custos_testing::Running::spawn(app.local_addr(), |signal| app.run_until(signal));
    let mut on_b = pb::intake_service_client::IntakeServiceClient::new(custos_testing::authed(
        b.addr,
        "alex",
        &[Role::Reporter],
    ));

    let mut stream = subscribe(&a, "").await;
    for _ in 0..3 {
        let report = on_b
            .submit_report(named(event_details(), pb::ReportKind::Event))
            .await
            .expect("submit on b")
            .into_inner()
            .report
            .expect("report");
        let event = next_event(&mut stream).await;
        assert_eq!(event.aggregate_reference, report.reference);
    }
}

/// Applies each event by inserting a row (a second application would show as a duplicate).
struct Recorder(mpsc::UnboundedSender<String>);

impl EventHandler for Recorder {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            with_tx!(tx, t => {
                sqlx::query("INSERT INTO applied (event_id, reference) VALUES ($1, $2)")
                    .bind(&event.event_id)
                    .bind(&event.aggregate_reference)
                    .execute(&mut **t)
                    .await
                    .map(|_| ())
            })?;
            let _ = self.0.send(event.aggregate_reference.clone());
            Ok(())
        })
    }
}

static NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;

async fn consumer_db(database: &TestDatabase) -> Db {
    let db = Db::connect(
        &database.config(),
        "consumer",
        Migrations {
            postgres: &NO_MIGRATIONS,
            sqlite: &NO_MIGRATIONS,
        },
    )
    .await
    .unwrap();
    with_pool!(db.writer(), p => {
        sqlx::query("CREATE TABLE applied (event_id TEXT NOT NULL, reference TEXT NOT NULL)").execute(&p).await.unwrap();
    });
    db
}

fn start_consumer(
    db: &Db,
    addr: std::net::SocketAddr,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let source = FeedSource {
        channel: custos_testing::channel(addr),
        token: Arc::new(|| custos_testing::token("classification", &[Role::Service])),
    };
    let consumer = Consumer::new("test.intake", db.clone(), source, Recorder(tx));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer.run(shutdown.clone()));
    (shutdown, task, rx)
}

async fn receive(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) {
    for _ in 0..n {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("applied in time")
            .unwrap();
    }
}

async fn consumer_survives_its_crash_and_a_producer_outage(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let consumer_database = TestDatabase::new(backend).await;
    let db = consumer_db(&consumer_database).await;
    for _ in 0..3 {
        submit_event(&intake, "alex").await;
    }
    // The consumer applies two events, then crashes (its task is killed mid-stream).
    let (_, task, mut rx) = start_consumer(&db, intake.addr());
    receive(&mut rx, 2).await;
    task.abort();
    let _ = task.await;

    // The producer goes down and comes back on the same port while more is reported.
    let addr = intake.addr();
    let TestIntake {
        running, database, ..
    } = intake;
    running.stop().await.unwrap();
    let mut config = Config {
        server: custos_testing::server_config(),
        database: database.config(),
        auth: custos_testing::auth_config(),
        ..Config::default()
    };
    config.server.listen = addr;
    let (shutdown, task, mut rx) = start_consumer(&db, addr);
    let intake = TestIntake::start_on(database, config).await;
    for _ in 0..2 {
        submit_event(&intake, "alex").await;
    }
    // Whatever the first run had not committed is applied now, and nothing twice.
    let count = async || -> (i64, i64) {
        with_pool!(db.reader(), p => {
            sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM applied").fetch_one(&p).await.unwrap()
        })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while count().await.0 < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer caught up in time"
        );
        // Each application is announced just before its commit: wait for the next one.
        let _ = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
    }
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(count().await, (5, 5));
}

on_both_backends!(
    replay_resume_and_live_delivery,
    consumer_survives_its_crash_and_a_producer_outage
);
