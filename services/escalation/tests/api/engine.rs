//! The engine on both backends, with time moved by the test: every nominee must act,
//! the chain moves at each deadline, senior management past the last tier, and each
//! deadline is taken by one transaction at a time.

use custos_escalation::{
    directory::Trigger,
    engine::{self, Subject},
    error::EscalationError,
    escalation::{EscalationState, Facts, SubjectKind, TimelineKind},
    store,
};
use custos_kit::storage::{Db, DbTime};
use custos_proto::escalation::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::common::{Directory, TestEscalation, minutes, people};

fn incident() -> Subject {
    Subject {
        kind: SubjectKind::Incident,
        id: Uuid::now_v7(),
        reference: "INC-2026-000042".into(),
        facts: Facts {
            category: "malware".into(),
            level: Some(3),
            ..Facts::default()
        },
        anonymous: false,
    }
}

/// Sets the high-incident policy: tier by tier, its people, deadline and reminder (in
/// minutes). The first tier's people are the high/medium list, which that policy's
/// first tier must name.
async fn set_policy(dir: &mut Directory, tiers: Vec<(Vec<String>, i64, i64)>) {
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::HighMedium as i32,
        contact_ids: tiers[0].0.clone(),
        revision: 0,
    })
    .await
    .unwrap();
    let mut first = true;
    dir.set_escalation_policy(pb::SetEscalationPolicyRequest {
        policy: Some(pb::EscalationPolicy {
            trigger: pb::EscalationTrigger::IncidentHigh as i32,
            tiers: tiers
                .into_iter()
                .map(|(ids, deadline, reminder)| pb::EscalationTier {
                    contact_ids: ids,
                    lists: if std::mem::take(&mut first) {
                        vec![pb::ContactListKind::HighMedium as i32]
                    } else {
                        vec![]
                    },
                    response_deadline: minutes(deadline),
                    reminder_before: minutes(reminder),
                })
                .collect(),
            repeat_interval: minutes(30),
            ..Default::default()
        }),
        revision: 0,
    })
    .await
    .unwrap();
}

async fn senior(dir: &mut Directory, ids: Vec<String>) {
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::SeniorManagement as i32,
        contact_ids: ids,
        revision: 0,
    })
    .await
    .unwrap();
}

/// Fires what is due at `at`, as a replica's timer does (one batch); returns how many.
async fn tick(db: &Db, at: OffsetDateTime) -> usize {
    let mut tx = db.begin().await.unwrap();
    let due = store::take_due(&mut tx, DbTime::new(at), 100)
        .await
        .unwrap();
    engine::fire_batch(&mut tx, &due, DbTime::new(at))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    due.len()
}

async fn ack(
    db: &Db,
    id: Uuid,
    contact: &str,
    at: OffsetDateTime,
) -> Result<engine::Acknowledged, EscalationError> {
    let mut tx = db.begin().await.unwrap();
    let r = engine::acknowledge(
        &mut tx,
        id,
        Uuid::parse_str(contact).unwrap(),
        "their-subject",
        "isolated the host",
        DbTime::new(at),
    )
    .await;
    if r.is_ok() {
        tx.commit().await.unwrap();
    }
    r
}

async fn kinds(db: &Db, id: Uuid) -> Vec<TimelineKind> {
    let mut conn = db.read().await.unwrap();
    store::timeline(&mut conn, id, 0, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .collect()
}

async fn open(db: &Db, subject: &Subject, at: OffsetDateTime) -> Option<Uuid> {
    let mut tx = db.begin().await.unwrap();
    let id = engine::open(&mut tx, Trigger::IncidentHigh, subject, DbTime::new(at))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn a_tier_is_satisfied_only_when_every_nominee_has_acted(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let first = people(&mut dir, "First", 2).await;
    let second = people(&mut dir, "Second", 2).await;
    set_policy(
        &mut dir,
        vec![(first.clone(), 30, 10), (second.clone(), 60, 0)],
    )
    .await;
    let t0 = OffsetDateTime::now_utc() + Duration::days(1);
    let subject = incident();
    let id = open(&svc.db, &subject, t0).await.expect("opened");
    assert_eq!(
        open(&svc.db, &subject, t0).await,
        None,
        "one escalation per trigger and subject"
    );

    assert_eq!(tick(&svc.db, t0 + Duration::minutes(19)).await, 0);
    assert_eq!(
        tick(&svc.db, t0 + Duration::minutes(20)).await,
        1,
        "the reminder"
    );
    let a = ack(&svc.db, id, &first[0], t0 + Duration::minutes(25))
        .await
        .unwrap();
    assert!(a.recorded);
    let mut conn = svc.db.read().await.unwrap();
    assert_eq!(
        store::escalation(&mut conn, id)
            .await
            .unwrap()
            .unwrap()
            .state,
        EscalationState::Open,
        "one nominee of two is not the tier"
    );
    drop(conn);
    let again = ack(&svc.db, id, &first[0], t0 + Duration::minutes(26))
        .await
        .unwrap();
    assert_eq!(
        (again.recorded, again.at, again.note.as_str()),
        (false, a.at, "isolated the host")
    );

    assert_eq!(
        tick(&svc.db, t0 + Duration::minutes(30)).await,
        1,
        "the first tier's deadline"
    );
    let mut conn = svc.db.read().await.unwrap();
    let row = store::escalation(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(row.current_tier, 2);
    let nominees = store::nominees_of(&mut conn, id).await.unwrap();
    let missed: Vec<_> = nominees
        .iter()
        .filter(|n| n.missed_deadline)
        .map(|n| n.display_name.as_str())
        .collect();
    assert_eq!(missed, ["First 2"], "the record shows who did not act");
    drop(conn);
    let outsider = people(&mut dir, "Outsider", 1).await;
    assert!(matches!(
        ack(&svc.db, id, &outsider[0], t0 + Duration::minutes(31)).await,
        Err(EscalationError::NotNominee)
    ));
    ack(&svc.db, id, &second[0], t0 + Duration::minutes(40))
        .await
        .unwrap();
    ack(&svc.db, id, &second[1], t0 + Duration::minutes(41))
        .await
        .unwrap();
    let mut conn = svc.db.read().await.unwrap();
    let row = store::escalation(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(row.state, EscalationState::Satisfied);
    assert_eq!(
        store::next_due(&mut conn).await.unwrap(),
        None,
        "no deadline left"
    );
    let mail = store::mail_of(&mut conn, id).await.unwrap();
    let to: Vec<_> = mail
        .iter()
        .map(|m| m.subject.starts_with("[custos] Reminder"))
        .collect();
    assert_eq!(
        to,
        [false, false, true, true, false, false],
        "told, reminded, next tier told"
    );
    assert!(
        mail[0]
            .body
            .contains(&format!("custos escalation ack {id}")),
        "{}",
        mail[0].body
    );
    assert!(mail[0].body.contains("INC-2026-000042") && mail[0].body.contains("Level: HIGH"));
    drop(conn);
    use TimelineKind::*;
    assert_eq!(
        kinds(&svc.db, id).await,
        [
            Opened,
            TierReached,
            MessageQueued,
            MessageQueued,
            MessageQueued,
            MessageQueued,
            Reminded,
            Acknowledged,
            DeadlineMissed,
            TierReached,
            MessageQueued,
            MessageQueued,
            Acknowledged,
            Acknowledged,
            Satisfied
        ]
    );
}

async fn past_the_last_tier_senior_management_is_told_and_reminders_repeat(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let nominees = people(&mut dir, "Nominee", 2).await;
    let seniors = people(&mut dir, "Senior", 1).await;
    senior(&mut dir, seniors.clone()).await;
    set_policy(&mut dir, vec![(nominees.clone(), 30, 0)]).await;
    let t0 = OffsetDateTime::now_utc() + Duration::days(1);
    let id = open(&svc.db, &incident(), t0).await.unwrap();
    assert_eq!(tick(&svc.db, t0 + Duration::minutes(30)).await, 1);
    let mut conn = svc.db.read().await.unwrap();
    let row = store::escalation(&mut conn, id).await.unwrap().unwrap();
    assert!(row.exhausted && row.state == EscalationState::Open);
    let mail = store::mail_of(&mut conn, id).await.unwrap();
    let last = mail.last().unwrap();
    assert_eq!(last.contact_id.to_string(), seniors[0]);
    assert!(last.body.contains("Nominee 1, Nominee 2"), "{}", last.body);
    drop(conn);
    assert_eq!(tick(&svc.db, t0 + Duration::minutes(59)).await, 0);
    assert_eq!(
        tick(&svc.db, t0 + Duration::minutes(60)).await,
        1,
        "the repeat"
    );
    assert_eq!(
        tick(&svc.db, t0 + Duration::minutes(90)).await,
        1,
        "and again"
    );
    let mut conn = svc.db.read().await.unwrap();
    assert_eq!(
        store::mail_of(&mut conn, id).await.unwrap().len(),
        2 + 1 + 2 + 2
    );
    drop(conn);
    ack(&svc.db, id, &nominees[0], t0 + Duration::minutes(95))
        .await
        .unwrap();
    ack(&svc.db, id, &nominees[1], t0 + Duration::minutes(96))
        .await
        .unwrap();
    assert_eq!(
        tick(&svc.db, t0 + Duration::days(30)).await,
        0,
        "satisfied: nothing repeats"
    );
}

async fn a_deadline_is_taken_by_one_transaction_and_returns_if_it_rolls_back(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let nominees = people(&mut dir, "N", 2).await;
    set_policy(&mut dir, vec![(nominees, 30, 0)]).await;
    let t0 = OffsetDateTime::now_utc() + Duration::days(1);
    for _ in 0..3 {
        open(&svc.db, &incident(), t0).await.unwrap();
    }
    let due = DbTime::new(t0 + Duration::minutes(30));
    let mut dying = svc.db.begin().await.unwrap();
    assert_eq!(
        store::take_due(&mut dying, due, 100).await.unwrap().len(),
        3
    );
    if backend == Backend::Postgres {
        // Another replica, meanwhile, skips what the first holds.
        let mut other = svc.db.begin().await.unwrap();
        assert!(
            store::take_due(&mut other, due, 100)
                .await
                .unwrap()
                .is_empty()
        );
        other.commit().await.unwrap();
    }
    drop(dying); // the replica dies before committing: its rollback frees the rows
    let mut fired = 0;
    crate::common::eventually("the rolled-back deadlines return", async || {
        fired += tick(&svc.db, t0 + Duration::minutes(30)).await;
        fired >= 3
    })
    .await;
    assert_eq!(fired, 3, "nothing was lost");
    assert_eq!(
        tick(&svc.db, t0 + Duration::minutes(30)).await,
        0,
        "nor fires twice"
    );
}

async fn a_stopped_escalation_keeps_no_deadline_and_takes_no_acknowledgement(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let nominees = people(&mut dir, "M", 2).await;
    set_policy(&mut dir, vec![(nominees.clone(), 30, 10)]).await;
    let t0 = OffsetDateTime::now_utc() + Duration::days(1);
    let subject = incident();
    let id = open(&svc.db, &subject, t0).await.unwrap();
    let mut tx = svc.db.begin().await.unwrap();
    let n = engine::stop(
        &mut tx,
        subject.id,
        |_| true,
        "incident closed",
        DbTime::new(t0),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(tick(&svc.db, t0 + Duration::days(1)).await, 0);
    assert!(matches!(
        ack(&svc.db, id, &nominees[0], t0).await,
        Err(EscalationError::EscalationEnded { .. })
    ));
    assert_eq!(
        kinds(&svc.db, id).await.last(),
        Some(&TimelineKind::Stopped)
    );
}

/// Several escalations, each with its reminder and its deadline due, in one batch: each
/// reminded, then moved to its second tier, as if one at a time.
async fn one_batch_applies_many_deadlines_of_many_escalations(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let first = people(&mut dir, "First", 2).await;
    let second = people(&mut dir, "Second", 2).await;
    set_policy(&mut dir, vec![(first, 30, 10), (second, 60, 0)]).await;
    let t0 = OffsetDateTime::now_utc() + Duration::days(1);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(open(&svc.db, &incident(), t0).await.unwrap());
    }
    assert_eq!(
        tick(&svc.db, t0 + Duration::minutes(30)).await,
        6,
        "three reminders, three deadlines"
    );
    let mut conn = svc.db.read().await.unwrap();
    for id in &ids {
        let row = store::escalation(&mut conn, *id).await.unwrap().unwrap();
        assert_eq!(row.current_tier, 2);
        assert_eq!(row.timeline_sequence, 11);
        let mail = store::mail_of(&mut conn, *id).await.unwrap();
        let reminders = mail
            .iter()
            .filter(|m| m.subject.starts_with("[custos] Reminder"))
            .count();
        assert_eq!(
            (mail.len(), reminders),
            (6, 2),
            "told, reminded, next tier told"
        );
        let nominees = store::nominees_of(&mut conn, *id).await.unwrap();
        assert_eq!(nominees.iter().filter(|n| n.missed_deadline).count(), 2);
        assert_eq!(nominees.iter().filter(|n| n.tier == 2).count(), 2);
        let sequences: Vec<i32> = store::timeline(&mut conn, *id, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|t| t.sequence)
            .collect();
        assert_eq!(sequences, (1..=11).collect::<Vec<_>>());
    }
    drop(conn);
    use TimelineKind::*;
    for id in &ids {
        assert_eq!(
            kinds(&svc.db, *id).await,
            [
                Opened,
                TierReached,
                MessageQueued,
                MessageQueued,
                MessageQueued,
                MessageQueued,
                Reminded,
                DeadlineMissed,
                TierReached,
                MessageQueued,
                MessageQueued,
            ]
        );
    }
}

on_both_backends!(
    one_batch_applies_many_deadlines_of_many_escalations,
    a_tier_is_satisfied_only_when_every_nominee_has_acted,
    past_the_last_tier_senior_management_is_told_and_reminders_repeat,
    a_deadline_is_taken_by_one_transaction_and_returns_if_it_rolls_back,
    a_stopped_escalation_keeps_no_deadline_and_takes_no_acknowledgement,
);
