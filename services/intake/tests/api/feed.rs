//! Intake's event feed: replay, resume, live delivery, heartbeats, events that commit out
//! of order, events held back behind an open transaction, and commits on another replica.

use std::time::Duration;

use custos_intake::{Config, Intake};
use custos_kit::{
    auth::Role,
    outbox::{self, Cursor},
    service::App,
    with_conn,
};
use custos_proto::common::v1::{
    Event, SubscribeRequest, SubscribeResponse, event_feed_service_client::EventFeedServiceClient,
    subscribe_response::Item,
};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use prost::Message;
use tonic::Streaming;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

pub async fn subscribe(intake: &TestIntake, after: &str) -> Streaming<SubscribeResponse> {
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

pub async fn next_event(stream: &mut Streaming<SubscribeResponse>) -> Event {
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
/// commit after a larger one is visible. The reader must wait for it, not skip it. Each
/// commit wakes the feed on its own (`Tx::commit`): nothing here wakes it by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_that_commit_out_of_order_are_not_skipped() {
    let intake = TestIntake::start(Backend::Postgres).await;
    let append = |reference: &'static str| {
        outbox::NewEvent::new(
            uuid::Uuid::now_v7(),
            reference,
            time::OffsetDateTime::now_utc(),
            &pb::FollowUpAdded::default(),
        )
    };
    // `late` takes its transaction id first, `early` inserts first and commits first.
    let mut late_tx = intake.db.begin().await.unwrap();
    with_conn!(&mut late_tx, c => {
        sqlx::query("SELECT pg_current_xact_id()").execute(&mut *c).await.unwrap();
    });
    let mut early_tx = intake.db.begin().await.unwrap();
    early_tx.append_event(&append("EARLY")).await.unwrap();
    late_tx.append_event(&append("LATE")).await.unwrap();
    early_tx.commit().await.unwrap();

    let batch = outbox::read_after(intake.db.read().await.unwrap(), Cursor::START, 100)
        .await
        .unwrap();
    assert!(
        batch.events.is_empty(),
        "EARLY must wait for the older transaction"
    );
    assert!(batch.held_back);

    let mut stream = subscribe(&intake, "").await;
    late_tx.commit().await.unwrap();
    let first = next_event(&mut stream).await;
    let second = next_event(&mut stream).await;
    assert_eq!(
        [first.aggregate_reference, second.aggregate_reference],
        ["LATE", "EARLY"]
    );
    let batch = outbox::read_after(
        intake.db.read().await.unwrap(),
        Cursor::parse(&second.cursor).unwrap(),
        100,
    )
    .await
    .unwrap();
    assert!(batch.events.is_empty() && !batch.held_back);
}

/// An event waiting behind a transaction open elsewhere in the cluster: the feed records
/// how long it has waited, and says at WARN which transaction it waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_held_back_events_are_measured_and_explained() {
    capture_logs();
    let metrics = custos_testing::metrics::capture();
    let intake =
        TestIntake::start_with(Backend::Postgres, |c| c.feed.held_back_warning_secs = 0).await;
    let mut stream = subscribe(&intake, "").await;
    let other = sqlx::PgPool::connect(intake.database.url()).await.unwrap();
    let mut blocker = other.begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *blocker)
        .await
        .unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let report = submit_event(&intake, "alex").await;
    crate::consumer::eventually("a WARN names the blocking transaction", async || {
        captured_logs().lines().any(|l| {
            l.contains("WARN")
                && l.contains("held back")
                && l.contains(&format!("blocking_pid={pid}"))
        })
    })
    .await;
    let age = metrics.points("custos.feed.held_back.age");
    assert!(
        age.iter()
            .any(|(attrs, secs)| attrs["feed"] == "intake" && *secs > 0.0),
        "{age:?}"
    );
    blocker.commit().await.unwrap();
    assert_eq!(
        next_event(&mut stream).await.aggregate_reference,
        report.reference
    );
}

/// Replicas share one database. A report submitted on one replica reaches a subscriber
/// of another as it commits (LISTEN/NOTIFY between them), not at the next heartbeat's
/// re-read: heartbeats here are an hour apart, and after the first event the only way
/// the subscriber's replica hears of a commit is the notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_from_another_replica_arrive_as_they_commit() {
    let hourly_heartbeat = |c: &mut Config| c.server.feed_heartbeat_secs = 3600;
    let a = TestIntake::start_with(Backend::Postgres, hourly_heartbeat).await;
    let mut config = config(&a.database);
    hourly_heartbeat(&mut config);
    let app = App::build::<Intake>(config)
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

on_both_backends!(replay_resume_and_live_delivery);
