//! A poison event: parked after its attempts, logged at ERROR and counted, the consumer
//! moving on; an operator lists and replays it over `FeedAdminService`, as `custos feed`
//! does. The consumer here is a service of its own built on the kit (`TallyService`).

use custos_kit::{auth::Role, service::App};
use custos_proto::common::v1::{
    self as feed_pb, feed_admin_service_client::FeedAdminServiceClient,
};
use custos_testing::{Backend, Running, TestDatabase, on_both_backends};
use tonic::Code;

use crate::{
    common::*,
    consumer::eventually,
    tally::{self, BEHAVIOUR, TallyService, TallySettings},
};

async fn a_poison_event_is_parked_then_replayed(backend: Backend) {
    capture_logs();
    let metrics = custos_testing::metrics::capture();
    let intake = TestIntake::start(backend).await;
    let database = TestDatabase::new(backend).await;
    let mut config = custos_testing::config(
        &database,
        TallySettings {
            intake: Some(intake.addr()),
        },
    );
    config.feed.consumer_max_attempts = 3;
    let app = App::build::<TallyService>(config)
        .await
        .expect("tally starts");
    let (db, consumer) = (app.db().clone(), app.consumers()[0].clone());
    let running = Running::spawn(app.local_addr(), |signal| app.run_until(signal));
    let admin_addr = running.addr;

    let first = submit_event(&intake, "alex").await.reference;
    let poison = {
        let mut request = named(event_details(), custos_proto::intake::v1::ReportKind::Event);
        request.idempotency_key = key();
        // Known before it is sent: the next reference.
        let reference = format!("SIR-{}-000002", time::OffsetDateTime::now_utc().year());
        BEHAVIOUR.poison.lock().unwrap().insert(reference.clone());
        intake
            .client("alex", &[Role::Reporter])
            .submit_report(request)
            .await
            .unwrap();
        reference
    };
    let third = submit_event(&intake, "alex").await.reference;
    eventually("the consumer moved past the poison event", async || {
        tally::tallies(&db).await.contains_key(&third)
    })
    .await;
    assert_eq!(BEHAVIOUR.attempts(&poison), 3, "tried max_attempts times");
    let tallies = tally::tallies(&db).await;
    assert_eq!(tallies.get(&first), Some(&1));
    assert_eq!(
        tallies.get(&poison),
        None,
        "no effect of the failed attempts"
    );

    let parked = metrics.points("custos.feed.consumer.parked");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].1, 1.0);
    assert_eq!(parked[0].0["consumer"], "tally.intake");
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("PARKED"))
        .expect("an ERROR line about the parked event");
    assert!(line.contains("ERROR") && line.contains(&poison), "{line}");

    let mut admin =
        FeedAdminServiceClient::new(custos_testing::authed(admin_addr, "ops", &[Role::Admin]));
    let listed = admin
        .list_parked_events(feed_pb::ListParkedEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .parked_events;
    assert_eq!(listed.len(), 1);
    let p = &listed[0];
    assert_eq!(
        (
            p.consumer.as_str(),
            p.aggregate_reference.as_str(),
            p.attempts
        ),
        ("tally.intake", poison.as_str(), 3)
    );
    assert!(p.error.contains("poison"), "{}", p.error);
    let consumers = admin
        .list_consumers(feed_pb::ListConsumersRequest {})
        .await
        .unwrap()
        .into_inner()
        .consumers;
    assert_eq!(consumers[0].parked_events, 1);

    // Still poison: the replay fails and it stays parked.
    let replay = || feed_pb::ReplayParkedEventRequest {
        consumer: "tally.intake".into(),
        event_id: p.event_id.clone(),
    };
    let again = admin
        .replay_parked_event(replay())
        .await
        .unwrap()
        .into_inner();
    assert!(!again.applied && again.error.contains("poison"));
    // Cured (a fixed handler, say): the replay applies it once.
    BEHAVIOUR.poison.lock().unwrap().clear();
    let cured = admin
        .replay_parked_event(replay())
        .await
        .unwrap()
        .into_inner();
    assert!(cured.applied, "{}", cured.error);
    assert_eq!(tally::tallies(&db).await.get(&poison), Some(&1));
    let err = admin.replay_parked_event(replay()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "no longer parked");
    assert!(
        admin
            .list_parked_events(feed_pb::ListParkedEventsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .parked_events
            .is_empty()
    );
    // Only an admin may do this.
    let err = FeedAdminServiceClient::new(custos_testing::authed(
        admin_addr,
        "alex",
        &[Role::Reporter],
    ))
    .list_consumers(feed_pb::ListConsumersRequest {})
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // The lag gauge says how far behind the consumer was (it was never far).
    let lag = metrics.points("custos.feed.consumer.lag");
    assert!(
        !lag.is_empty() && lag.iter().all(|(_, secs)| *secs < 60.0),
        "{lag:?}"
    );
    drop(consumer);
    running.stop().await.unwrap();
}

on_both_backends!(a_poison_event_is_parked_then_replayed);

/// An event about an anonymous report that fails and is parked leaves no exact time
/// beside the report: the failure and parking are stamped to the minute, and the log
/// lines (whose times are exact) name neither the event nor the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_anonymous_event_is_not_dated() {
    capture_logs();
    let intake = TestIntake::start(Backend::Sqlite).await;
    let database = TestDatabase::new(Backend::Sqlite).await;
    let mut config = custos_testing::config(
        &database,
        TallySettings {
            intake: Some(intake.addr()),
        },
    );
    config.feed.consumer_max_attempts = 2;
    let app = App::build::<TallyService>(config)
        .await
        .expect("tally starts");
    let db = app.db().clone();
    let running = Running::spawn(app.local_addr(), |signal| app.run_until(signal));
    // Known before it is sent: the first reference.
    let poison = format!("SIR-{}-000001", time::OffsetDateTime::now_utc().year());
    BEHAVIOUR.poison.lock().unwrap().insert(poison.clone());
    let sent = intake
        .anonymous()
        .submit_report(anonymous_event())
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(sent.reference, poison);
    let after = submit_event(&intake, "alex").await.reference;
    eventually("the consumer moved past the anonymous event", async || {
        tally::tallies(&db).await.contains_key(&after)
    })
    .await;

    let parked =
        FeedAdminServiceClient::new(custos_testing::authed(running.addr, "ops", &[Role::Admin]))
            .list_parked_events(feed_pb::ListParkedEventsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .parked_events;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].aggregate_reference, poison);
    let at = parked[0].parked_at.unwrap();
    assert_eq!((at.seconds % 60, at.nanos), (0, 0), "parked to the minute");

    let logs = captured_logs();
    assert!(logs.contains("anonymous report was PARKED"), "{logs}");
    for line in logs.lines().filter(|l| l.contains("tally")) {
        assert!(
            !line.contains(&poison),
            "a log line names the report: {line}"
        );
        assert!(
            !line.contains(&parked[0].event_id),
            "a log line names the event: {line}"
        );
    }
    running.stop().await.unwrap();
}
