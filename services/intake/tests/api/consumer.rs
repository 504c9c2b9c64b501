//! A consumer of intake's feed whose handler calls a store function in the consumer's
//! transaction: one effect per event however often it is delivered, nothing left of an
//! attempt that failed, poison events parked and replayed, a replica that lost its lease
//! fenced off, unknown feed items ignored, and recovery from a crash and an outage.

use std::{collections::HashSet, sync::Arc, time::Duration};

use custos_intake::Config;
use custos_kit::{
    consumer::{Consumer, ConsumerOptions, ConsumerState},
    storage::Db,
};
use custos_testing::{Backend, TestDatabase, on_both_backends};
use tokio_util::sync::CancellationToken;

use crate::{
    common::*,
    tally::{self, Behaviour, Tally},
};

pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `condition` every 20 ms until it holds, failing after [`WAIT`].
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut condition: F) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        tick.tick().await;
        if condition().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
    }
}

/// The tally consumer's own database.
pub async fn tally_db(backend: Backend) -> (TestDatabase, Db) {
    let database = TestDatabase::new(backend).await;
    let db = Db::connect(&database.config(), "tally", tally::migrations())
        .await
        .unwrap();
    (database, db)
}

pub fn quick() -> ConsumerOptions {
    ConsumerOptions {
        max_attempts: 3,
        retry_backoff: Duration::from_millis(20),
        standby_retry: Duration::from_millis(50),
        lease_check: Duration::from_secs(1),
    }
}

/// Starts a tally consumer; stop it with the returned token.
pub fn start(
    db: &Db,
    intake: std::net::SocketAddr,
    replica: &str,
    behaviour: Arc<Behaviour>,
    options: ConsumerOptions,
) -> (Consumer, CancellationToken, tokio::task::JoinHandle<()>) {
    let consumer = Consumer::new(
        "tally.intake",
        db.clone(),
        tally::intake_source(intake),
        Tally {
            replica: replica.into(),
            behaviour,
        },
        options,
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.clone().run(stop.clone()));
    (consumer, stop, task)
}

/// The cursor of the newest event in intake's outbox.
async fn last_cursor(intake: &TestIntake) -> String {
    let mut events = crate::feed::subscribe(intake, "").await;
    let mut last = String::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(300), events.message()).await {
            Ok(Ok(Some(item))) => match item.item {
                Some(custos_proto::common::v1::subscribe_response::Item::Event(e)) => {
                    last = e.cursor
                }
                _ => return last,
            },
            _ => return last,
        }
    }
}

/// Delivered twice (the stored cursor rewound to the start), every event still has one
/// effect: the consumer recognises what it applied, and the handler's store call ran in
/// the transaction that recorded it.
async fn a_replayed_feed_has_one_effect(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let (_database, db) = tally_db(backend).await;
    let mut references = Vec::new();
    for _ in 0..3 {
        references.push(submit_event(&intake, "alex").await.reference);
    }
    let (consumer, stop, task) = start(&db, intake.addr(), "a", Default::default(), quick());
    let last = last_cursor(&intake).await;
    eventually("the consumer caught up", async || {
        consumer.cursor().await.unwrap() == last
    })
    .await;
    consumer.reset("").await.unwrap();
    eventually("the consumer replayed the feed", async || {
        consumer.cursor().await.unwrap() == last
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let tallies = tally::tallies(&db).await;
    for reference in &references {
        assert_eq!(tallies.get(reference), Some(&1), "{reference}: one effect");
    }
    assert_eq!(tally::applied(db.read().await.unwrap()).await.len(), 3);
}

/// A handler that fails after its store call wrote: the write is rolled back with the
/// attempt, the event is tried again, and once it succeeds it has one effect.
async fn a_handler_that_fails_after_writing_leaves_no_partial_effect(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let (_database, db) = tally_db(backend).await;
    let report = submit_event(&intake, "alex").await.reference;
    let behaviour = Arc::new(Behaviour::default());
    behaviour.failures.lock().unwrap().insert(report.clone(), 2);
    let (consumer, stop, task) = start(&db, intake.addr(), "a", behaviour.clone(), quick());
    let last = last_cursor(&intake).await;
    eventually("the event was applied", async || {
        consumer.cursor().await.unwrap() == last
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(behaviour.attempts(&report), 3, "failed twice, then applied");
    assert_eq!(tally::tallies(&db).await.get(&report), Some(&1));
    assert_eq!(
        tally::applied(db.read().await.unwrap()).await.len(),
        1,
        "nothing of the failed attempts remains"
    );
}

/// The consumer crashes mid-stream, then the producer goes down and comes back on the
/// same port while more is reported: whatever had no effect is applied, nothing twice.
async fn consumer_survives_its_crash_and_a_producer_outage(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let (_database, db) = tally_db(backend).await;
    for _ in 0..3 {
        submit_event(&intake, "alex").await;
    }
    let (_, _, task) = start(&db, intake.addr(), "a", Default::default(), quick());
    eventually("two applied", async || {
        tally::applied(db.read().await.unwrap()).await.len() >= 2
    })
    .await;
    task.abort();
    let _ = task.await;

    let addr = intake.addr();
    let TestIntake {
        running, database, ..
    } = intake;
    running.stop().await.unwrap();
    let mut config: Config = config(&database);
    config.server.listen = addr;
    let (consumer, stop, task) = start(&db, addr, "b", Default::default(), quick());
    let intake = TestIntake::start_on(database, config).await;
    for _ in 0..2 {
        submit_event(&intake, "alex").await;
    }
    let last = last_cursor(&intake).await;
    eventually("the consumer caught up", async || {
        consumer.cursor().await.unwrap() == last
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let applied = tally::applied(db.read().await.unwrap()).await;
    let distinct: HashSet<_> = applied.iter().map(|a| &a.1).collect();
    assert_eq!((applied.len(), distinct.len()), (5, 5));
}

on_both_backends!(
    a_replayed_feed_has_one_effect,
    a_handler_that_fails_after_writing_leaves_no_partial_effect,
    consumer_survives_its_crash_and_a_producer_outage,
);

/// A replica whose lease connection is terminated while events flow must stop applying
/// once another has taken over: every event has one effect, and no event applied by the
/// first replica comes after one applied by the second. The first replica's own lease
/// check is set to an hour here, so only the fencing of the cursor can stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_lease_is_fenced_off() {
    let intake = TestIntake::start(Backend::Postgres).await;
    let (database, db) = tally_db(Backend::Postgres).await;
    let patient = ConsumerOptions {
        lease_check: Duration::from_secs(3600),
        ..quick()
    };
    let (a, stop_a, task_a) = start(&db, intake.addr(), "a", Default::default(), patient);
    eventually("replica a runs", async || {
        a.state() == ConsumerState::Running
    })
    .await;
    let (b, stop_b, task_b) = start(&db, intake.addr(), "b", Default::default(), patient);
    eventually("replica b waits", async || {
        b.state() == ConsumerState::Standby
    })
    .await;

    let submit = |n: usize| {
        let client = intake.client("alex", &[custos_kit::auth::Role::Reporter]);
        tokio::spawn(async move {
            let mut client = client;
            for _ in 0..n {
                client
                    .submit_report(named(
                        event_details(),
                        custos_proto::intake::v1::ReportKind::Event,
                    ))
                    .await
                    .unwrap();
            }
        })
    };
    let first_half = submit(30);
    eventually("replica a applied some", async || {
        tally::applied(db.read().await.unwrap()).await.len() >= 10
    })
    .await;
    let admin = sqlx::PgPool::connect(database.url()).await.unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(format!("custos lease {}.tally.intake", database.schema()))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(terminated, [true], "one lease connection, terminated");
    eventually("replica b took the lease", async || {
        b.state() == ConsumerState::Running
    })
    .await;
    // Replica a still has its stream, and never checks its lease: events keep coming to
    // both replicas.
    first_half.await.unwrap();
    submit(30).await.unwrap();
    let last = last_cursor(&intake).await;
    eventually("replica b took over and caught up", async || {
        b.state() == ConsumerState::Running && b.cursor().await.unwrap() == last
    })
    .await;
    stop_a.cancel();
    stop_b.cancel();
    task_a.await.unwrap();
    task_b.await.unwrap();

    let applied = tally::applied(db.read().await.unwrap()).await;
    let distinct: HashSet<_> = applied.iter().map(|(_, event, _)| event).collect();
    assert_eq!(applied.len(), 60, "every event applied");
    assert_eq!(distinct.len(), 60, "none twice");
    let last_by_a = applied.iter().filter(|x| x.2 == "a").map(|x| x.0).max();
    let first_by_b = applied.iter().filter(|x| x.2 == "b").map(|x| x.0).min();
    assert!(first_by_b.is_some(), "replica b took over");
    assert!(
        last_by_a < first_by_b,
        "replica a applied nothing once replica b had taken over: {applied:?}"
    );
}

/// Consumers skip stream items they do not know (a newer producer's), instead of ending
/// the stream and reconnecting for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_feed_items_are_ignored() {
    use custos_proto::common::v1::{
        Event, SubscribeRequest, SubscribeResponse,
        event_feed_service_server::{EventFeedService, EventFeedServiceServer},
        subscribe_response::Item,
    };
    /// A producer from the future: an item this build cannot decode between two events.
    struct Newer;
    #[tonic::async_trait]
    impl EventFeedService for Newer {
        type SubscribeStream = std::pin::Pin<
            Box<dyn tokio_stream::Stream<Item = Result<SubscribeResponse, tonic::Status>> + Send>,
        >;
        async fn subscribe(
            &self,
            _: tonic::Request<SubscribeRequest>,
        ) -> Result<tonic::Response<Self::SubscribeStream>, tonic::Status> {
            let event = |n: u8| SubscribeResponse {
                item: Some(Item::Event(Event {
                    cursor: format!("cursor-{n}"),
                    event_id: uuid::Uuid::new_v4().to_string(),
                    aggregate_reference: format!("SIR-2026-00000{n}"),
                    ..Default::default()
                })),
            };
            let items = vec![
                Ok(event(1)),
                Ok(SubscribeResponse { item: None }),
                Ok(event(2)),
            ];
            let stream =
                tokio_stream::StreamExt::chain(tokio_stream::iter(items), tokio_stream::pending());
            Ok(tonic::Response::new(Box::pin(stream)))
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(EventFeedServiceServer::new(Newer))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let (_database, db) = tally_db(Backend::Sqlite).await;
    let (consumer, stop, task) = start(&db, addr, "a", Default::default(), quick());
    eventually("both events applied", async || {
        consumer.cursor().await.unwrap() == "cursor-2"
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let tallies = tally::tallies(&db).await;
    assert_eq!(tallies.len(), 2, "{tallies:?}");
}

/// A stored cursor the feed cannot read at all (a cursor of an older version, or of
/// another feed) stops the consumer as a cursor of another history does: it never
/// retries for ever, and never starts again from the beginning on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_the_feed_cannot_read_stops_the_consumer() {
    let intake = TestIntake::start(Backend::Sqlite).await;
    let (_database, db) = tally_db(Backend::Sqlite).await;
    submit_event(&intake, "alex").await;
    let mut tx = db.begin().await.unwrap();
    custos_kit::with_conn!(&mut tx, c => {
        sqlx::query("INSERT INTO consumer_cursors (consumer, cursor, updated_at) VALUES ('tally.intake', '41.7', '2026-01-01T00:00:00.000000Z')")
            .execute(&mut *c).await.unwrap();
    });
    tx.commit().await.unwrap();
    let (consumer, stop, task) = start(&db, intake.addr(), "a", Default::default(), quick());
    eventually("the consumer stopped", async || {
        matches!(consumer.state(), ConsumerState::Stopped(_))
    })
    .await;
    assert!(tally::applied(db.read().await.unwrap()).await.is_empty());
    stop.cancel();
    task.await.unwrap();
}
