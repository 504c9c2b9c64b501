//! The public business-continuity feed end to end: a snapshot and its cursor, then a
//! watch from it that misses nothing and repeats nothing out of order; filters that keep
//! telling a subscriber about an incident once it mattered to them; cursors from another
//! history refused; checkpoints on an idle stream; and a stalled subscriber cut off
//! while a live one keeps receiving, then resuming from its cursor with nothing lost.

use std::time::Duration;

use custos_kit::{
    auth::Role,
    error::{status_reason, status_violations},
    outbox::{Cursor, NewEvent},
};
use custos_proto::{
    classification::v1 as pb,
    continuity::v1::{self as cpb, watch_incident_notices_response::Item},
};
use custos_testing::{Backend, on_both_backends};
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

use crate::{common::*, incidents::raise};

const BC: &[Role] = &[Role::BusinessContinuity];

fn reason(status: &tonic::Status) -> String {
    status_reason(status).map(|(r, _)| r).unwrap_or_default()
}

/// Makes an incident service affecting (or not) for `services`.
async fn affecting(
    c: &TestClassification,
    incident: &pb::Incident,
    services: &[&str],
) -> pb::Incident {
    c.incidents("sam", &[Role::SecurityAdvisor])
        .update_incident(pb::UpdateIncidentRequest {
            incident_id: incident.id.clone(),
            revision: incident.revision,
            incident: Some(pb::Incident {
                continuity_statement: "Payroll runs by hand while the server is rebuilt".into(),
                continuity_title: "Payroll server down".into(),
                flags: Some(pb::IncidentFlags {
                    service_affecting: !services.is_empty(),
                    business_services: services.iter().map(|s| (*s).into()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![
                    "flags.service_affecting".into(),
                    "flags.business_services".into(),
                    "continuity_statement".into(),
                    "continuity_title".into(),
                ],
            }),
            reason: "business continuity informed".into(),
            idempotency_key: key(),
        })
        .await
        .expect("update")
        .into_inner()
        .incident
        .unwrap()
}

async fn watch(
    c: &TestClassification,
    after: &str,
    filter: cpb::NoticeFilter,
) -> Streaming<cpb::WatchIncidentNoticesResponse> {
    c.continuity("bcm", BC)
        .watch_incident_notices(cpb::WatchIncidentNoticesRequest {
            after_cursor: after.into(),
            filter: Some(filter),
        })
        .await
        .expect("watch")
        .into_inner()
}

async fn next_item(stream: &mut Streaming<cpb::WatchIncidentNoticesResponse>) -> Item {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an item within 20 s")
        .expect("the stream goes on")
        .expect("no error")
        .item
        .expect("an item")
}

/// Items up to and including the caught-up marker.
async fn replay(
    stream: &mut Streaming<cpb::WatchIncidentNoticesResponse>,
) -> Vec<cpb::IncidentNotice> {
    let mut notices = Vec::new();
    loop {
        match next_item(stream).await {
            Item::Change(change) => notices.push(change.notice.unwrap()),
            Item::CaughtUp(_) => return notices,
            Item::Checkpoint(_) => {}
        }
    }
}

/// The next notice, passing checkpoints.
async fn next_notice(
    stream: &mut Streaming<cpb::WatchIncidentNoticesResponse>,
) -> cpb::NoticeChange {
    loop {
        if let Item::Change(change) = next_item(stream).await {
            return change;
        }
    }
}

async fn a_snapshot_then_its_watch_miss_nothing(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let payroll = raise(&c, 1, false).await;
    let quiet = raise(&c, 2, false).await;
    let payroll = affecting(&c, &payroll, &["payroll"]).await;
    let mut bcm = c.continuity("bcm", BC);
    let snapshot = bcm
        .list_incident_notices(cpb::ListIncidentNoticesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        snapshot.notices.len(),
        1,
        "only service-affecting incidents"
    );
    let notice = &snapshot.notices[0];
    assert_eq!(
        (notice.reference.as_str(), notice.revision, notice.stage),
        (
            payroll.reference.as_str(),
            payroll.revision,
            cpb::incident_notice::Stage::Open as i32
        )
    );
    assert_eq!(notice.business_services, ["payroll"]);
    assert_eq!(
        notice.current_action,
        "Payroll runs by hand while the server is rebuilt"
    );
    assert!(notice.service_affecting && !notice.resolved);

    // From the snapshot's cursor: caught up at once, then each change as it commits.
    let mut live = watch(&c, &snapshot.cursor, cpb::NoticeFilter::default()).await;
    // Nothing newer than the snapshot (a notice held back behind another transaction
    // while it was taken may come again, as documented).
    assert!(
        replay(&mut live)
            .await
            .iter()
            .all(|n| n.revision <= payroll.revision)
    );
    let moved = c
        .incidents("sam", &[Role::SecurityAdvisor])
        .investigate_incident(pb::InvestigateIncidentRequest {
            incident_id: payroll.id.clone(),
            revision: payroll.revision,
            note: String::new(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    let change = next_notice(&mut live).await;
    let notice = change.notice.unwrap();
    assert_eq!(
        (notice.revision, notice.stage),
        (
            moved.revision,
            cpb::incident_notice::Stage::Investigating as i32
        )
    );
    // A change that is not public (the actions log) is no notice; a new service-affecting
    // incident is.
    c.incidents("sam", &[Role::SecurityAdvisor])
        .add_incident_action(pb::AddIncidentActionRequest {
            incident_id: payroll.id.clone(),
            kind: pb::IncidentActionKind::Containment as i32,
            detail: "Isolated the payroll server".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap();
    let email = affecting(&c, &quiet, &["email"]).await;
    let notice = next_notice(&mut live).await.notice.unwrap();
    assert_eq!(notice.reference, email.reference);

    // A subscriber for payroll replays payroll's notices only, and hears when payroll is
    // no longer affected.
    let payroll_only = cpb::NoticeFilter {
        business_services: vec!["payroll".into()],
        ..Default::default()
    };
    let mut mine = watch(&c, "", payroll_only.clone()).await;
    let replayed: Vec<(String, i32)> = replay(&mut mine)
        .await
        .into_iter()
        .map(|n| (n.reference, n.revision))
        .collect();
    assert_eq!(
        replayed,
        [
            (payroll.reference.clone(), payroll.revision),
            (payroll.reference.clone(), moved.revision)
        ]
    );
    let current = crate::incidents::get(&c, "sam", &[Role::SecurityAdvisor], &payroll.id)
        .await
        .unwrap();
    affecting(&c, &current, &[]).await;
    let over = next_notice(&mut mine).await.notice.unwrap();
    assert!(!over.service_affecting && over.business_services.is_empty());
    assert_eq!(over.ever_affected_services, ["payroll"]);
    let snapshot = bcm
        .list_incident_notices(cpb::ListIncidentNoticesRequest {
            filter: Some(payroll_only),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snapshot.notices.len(), 1);
    assert_eq!(snapshot.notices[0].reference, payroll.reference);
    assert!(snapshot.next_page_token.is_empty());
}

async fn cursors_roles_and_checkpoints(backend: Backend) {
    let c = TestClassification::start_config(backend, settings(NO_INTAKE), |config| {
        config.server.feed_heartbeat_secs = 1;
    })
    .await;
    let err = c
        .continuity("rita", &[Role::Responder])
        .list_incident_notices(cpb::ListIncidentNoticesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    c.continuity("escalation", &[Role::Service])
        .list_incident_notices(cpb::ListIncidentNoticesRequest::default())
        .await
        .expect("services read the feed");
    let mut bcm = c.continuity("bcm", BC);
    let err = bcm
        .watch_incident_notices(cpb::WatchIncidentNoticesRequest {
            after_cursor: "not-a-cursor".into(),
            filter: Some(cpb::NoticeFilter {
                minimum_level: 9,
                business_services: vec!["Payroll!".into()],
            }),
        })
        .await
        .unwrap_err();
    let fields: Vec<String> = status_violations(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        ["filter.minimum_level", "filter.business_services[0]"]
    );
    // What this feed cannot open is another history to the subscriber: a new snapshot.
    let err = bcm
        .watch_incident_notices(cpb::WatchIncidentNoticesRequest {
            after_cursor: "not-a-cursor".into(),
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "CURSOR_EXPIRED");
    // A cursor this feed never issued (another history): refused, never resumed past.
    let foreign = Cursor {
        epoch: 0,
        txid: 1 << 40,
        id: 1 << 40,
        event_id: uuid::Uuid::now_v7(),
    };
    // Unsealed, it is no cursor of this feed at all.
    let err = bcm
        .watch_incident_notices(cpb::WatchIncidentNoticesRequest {
            after_cursor: foreign.to_string(),
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "CURSOR_EXPIRED");
    // Sealed as this feed seals its cursors, it names a position the feed never reached.
    let sealed =
        c.db.page_tokens()
            .seal(b"custos.continuity.v1 cursor", &foreign.to_string());
    let err = bcm
        .watch_incident_notices(cpb::WatchIncidentNoticesRequest {
            after_cursor: sealed,
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "CURSOR_EXPIRED".into())
    );

    // An idle stream says it is alive, with its cursor.
    let incident = raise(&c, 1, false).await;
    affecting(&c, &incident, &["email"]).await;
    let mut stream = watch(&c, "", cpb::NoticeFilter::default()).await;
    assert_eq!(replay(&mut stream).await.len(), 1);
    match next_item(&mut stream).await {
        Item::Checkpoint(beat) => {
            assert_eq!(beat.heartbeat_interval.unwrap().seconds, 1);
            let resumed = watch(&c, &beat.cursor, cpb::NoticeFilter::default()).await;
            let mut resumed = resumed;
            assert!(
                replay(&mut resumed).await.is_empty(),
                "nothing after the checkpoint"
            );
        }
        other => panic!("expected a checkpoint, got {other:?}"),
    }
}

/// Appends `count` notices of one incident straight to the outbox (faster than any API
/// call makes them), revisions 1, 2, …, in transactions of 20; before each, waits until
/// `keeping_up` has counted what came before (the pace of a subscriber that keeps up).
async fn burst(c: &TestClassification, count: i32, keeping_up: &std::sync::atomic::AtomicUsize) {
    let id = uuid::Uuid::now_v7();
    for chunk in (1..=count).collect::<Vec<_>>().chunks(20) {
        let sent = (chunk[0] - 1) as usize;
        eventually("the live subscriber keeps up", async || {
            keeping_up.load(std::sync::atomic::Ordering::SeqCst) >= sent
        })
        .await;
        let mut tx = c.db.begin().await.unwrap();
        let events: Vec<NewEvent> = chunk
            .iter()
            .map(|i| {
                NewEvent::new(
                    id,
                    "INC-2026-999999",
                    time::OffsetDateTime::now_utc(),
                    &cpb::IncidentNotice {
                        reference: "INC-2026-999999".into(),
                        revision: *i,
                        title: "Telephony down across the borough".into(),
                        service_affecting: true,
                        business_services: vec!["telephony".into()],
                        ever_affected_services: vec!["telephony".into()],
                        current_action: "x".repeat(1_500),
                        ..Default::default()
                    },
                )
            })
            .collect();
        tx.append_events(&events).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn a_stalled_subscriber_is_cut_off_and_resumes(backend: Backend) {
    let mut s = settings(NO_INTAKE);
    s.continuity_buffer = 64;
    let c = TestClassification::start_with(backend, s).await;
    let mut stalled = watch(&c, "", cpb::NoticeFilter::default()).await;
    let mut live = watch(&c, "", cpb::NoticeFilter::default()).await;
    assert!(replay(&mut stalled).await.is_empty());
    assert!(replay(&mut live).await.is_empty());
    // About 3 MB of notices: more than the stalled stream's transport holds.
    const COUNT: i32 = 2_000;
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = tokio::spawn({
        let counted = counted.clone();
        async move {
            let mut revisions = Vec::new();
            while revisions.len() < COUNT as usize {
                revisions.push(next_notice(&mut live).await.notice.unwrap().revision);
                counted.store(revisions.len(), std::sync::atomic::Ordering::SeqCst);
            }
            revisions
        }
    });
    burst(&c, COUNT, &counted).await;
    // The live subscriber is not held back by the stalled one.
    let revisions = reader.await.unwrap();
    assert_eq!(revisions, (1..=COUNT).collect::<Vec<_>>());
    // The stalled one reads what reached it, then is told it fell behind.
    let mut received = Vec::new();
    let mut last_cursor = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let error = loop {
        let item = tokio::time::timeout_at(deadline, stalled.next());
        match item.await.expect("cut off within 60 s") {
            Some(Ok(r)) => {
                if let Some(Item::Change(change)) = r.item {
                    received.push(change.notice.unwrap().revision);
                    last_cursor = change.cursor;
                }
            }
            Some(Err(status)) => break status,
            None => panic!("the stream ended without saying why"),
        }
    };
    assert_eq!(
        (error.code(), reason(&error)),
        (Code::ResourceExhausted, "SUBSCRIBER_TOO_SLOW".into())
    );
    assert!(
        received.len() < COUNT as usize,
        "it was cut off before the end"
    );
    // From its last cursor it gets the rest, in order, nothing skipped.
    let mut resumed = watch(&c, &last_cursor, cpb::NoticeFilter::default()).await;
    received.extend(replay(&mut resumed).await.into_iter().map(|n| n.revision));
    assert_eq!(received, (1..=COUNT).collect::<Vec<_>>());
}

async fn a_long_replay_is_not_mistaken_for_a_slow_subscriber(backend: Backend) {
    let mut s = settings(NO_INTAKE);
    s.continuity_buffer = 64;
    let c = TestClassification::start_with(backend, s).await;
    let unpaced = std::sync::atomic::AtomicUsize::new(usize::MAX);
    // A backlog larger than the stream's transport holds: the replay stops half-way
    // while the subscriber does not read...
    burst(&c, 2_000, &unpaced).await;
    let mut stream = watch(&c, "", cpb::NoticeFilter::default()).await;
    let first = next_notice(&mut stream).await.notice.unwrap().revision;
    // ...and more than the broadcast holds goes live meanwhile.
    burst(&c, 300, &unpaced).await;
    let mut revisions = vec![first];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while revisions.len() < 2_300 {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("in time");
        let item = item.expect("the stream goes on").expect("not cut off").item;
        if let Some(Item::Change(change)) = item {
            revisions.push(change.notice.unwrap().revision);
        }
    }
    let expected: Vec<i32> = (1..=2_000).chain(1..=300).collect();
    assert_eq!(revisions, expected, "each once, in order");
    // And it is live, not cut off: the next change reaches it.
    burst(&c, 1, &unpaced).await;
    assert_eq!(next_notice(&mut stream).await.notice.unwrap().revision, 1);
}

on_both_backends!(
    a_long_replay_is_not_mistaken_for_a_slow_subscriber,
    a_snapshot_then_its_watch_miss_nothing,
    cursors_roles_and_checkpoints,
    a_stalled_subscriber_is_cut_off_and_resumes,
);
