//! The timer as each replica runs it, on a clock the test sets: what is due fires (after
//! a restart too: deadlines live in the database), what is not due waits, and a seeded
//! directory is applied once.

use std::sync::Arc;

use custos_escalation::{
    Escalation,
    directory::Trigger,
    engine::{self, Subject},
    escalation::{EscalationState, Facts, SubjectKind},
    seed::DirectoryFile,
    store,
    timer::{Timer, TimerSettings},
};
use custos_kit::{service::Service, storage::DbTime};
use custos_proto::escalation::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use time::{Duration, OffsetDateTime};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::{NOWHERE, TestEscalation, people, settings};

async fn due_deadlines_fire_from_the_database_after_a_restart(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Night", 2).await;
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::HighMedium as i32,
        contact_ids: ids,
        revision: 0,
    })
    .await
    .unwrap();
    let subject = Subject {
        kind: SubjectKind::Incident,
        id: Uuid::now_v7(),
        reference: "INC-2026-000077".into(),
        facts: Facts::default(),
        anonymous: false,
    };
    let mut tx = svc.db.begin().await.unwrap();
    let id = engine::open(&mut tx, Trigger::IncidentHigh, &subject, DbTime::now())
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    // The service stops (its own timer with it) before anything is due, and a new
    // process connects to the same database.
    svc.running.stop().await.unwrap();
    let db = custos_kit::storage::Db::connect(
        &svc.database.config(),
        <Escalation as Service>::NAME,
        <Escalation as Service>::migrations(),
    )
    .await
    .unwrap();

    // After the restart, two hours on: the reminder (at 45 minutes) and the deadline (at
    // an hour) of the shipped high-incident policy are due.
    let later = OffsetDateTime::now_utc() + Duration::hours(2);
    let timer = Timer::new(
        db.clone(),
        Arc::new(move || later),
        TimerSettings {
            batch: 100,
            poll: std::time::Duration::from_millis(50),
        },
    );
    let mut fired = timer.fired();
    let stop = CancellationToken::new();
    let running = tokio::spawn(timer.run(stop.clone()));
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        fired.wait_for(|n| *n >= 2),
    )
    .await
    .expect("the due deadlines fire")
    .unwrap();
    let mut conn = db.read().await.unwrap();
    let row = store::escalation(&mut conn, id).await.unwrap().unwrap();
    assert!(row.exhausted, "past its only tier");
    assert_eq!(row.state, EscalationState::Open);
    let next = store::next_due(&mut conn).await.unwrap().unwrap();
    assert_eq!(
        next,
        DbTime::new(later + Duration::hours(1)),
        "the repeat, an hour on"
    );
    drop(conn);
    stop.cancel();
    running.await.unwrap();
    assert_eq!(*fired.borrow(), 2, "nothing fired twice");
}

async fn a_deadline_that_cannot_be_applied_is_parked_and_the_rest_fire(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Day", 2).await;
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::HighMedium as i32,
        contact_ids: ids,
        revision: 0,
    })
    .await
    .unwrap();
    let mut opened = Vec::new();
    for i in 0..3 {
        let subject = Subject {
            kind: SubjectKind::Incident,
            id: Uuid::now_v7(),
            reference: format!("INC-2026-00009{i}"),
            facts: Facts::default(),
            anonymous: false,
        };
        let mut tx = svc.db.begin().await.unwrap();
        opened.push(
            engine::open(&mut tx, Trigger::IncidentHigh, &subject, DbTime::now())
                .await
                .unwrap()
                .unwrap(),
        );
        tx.commit().await.unwrap();
    }
    // The middle one claims tiers its chain does not have: its deadline cannot apply.
    let bad = opened[1];
    let mut tx = svc.db.begin().await.unwrap();
    custos_kit::with_conn!(&mut tx, c => {
        sqlx::query("UPDATE escalations SET tier_count = 5 WHERE id = $1")
            .bind(bad)
            .execute(&mut *c)
            .await
            .unwrap();
    });
    tx.commit().await.unwrap();

    let later = OffsetDateTime::now_utc() + Duration::hours(2);
    let timer = Timer::new(
        svc.db.clone(),
        Arc::new(move || later),
        TimerSettings {
            batch: 10,
            poll: std::time::Duration::from_millis(50),
        },
    );
    let mut fired = timer.fired();
    let stop = CancellationToken::new();
    let running = tokio::spawn(timer.run(stop.clone()));
    // Three reminders and two deadlines apply; the bad deadline is parked.
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        fired.wait_for(|n| *n >= 5),
    )
    .await
    .expect("the good deadlines fire")
    .unwrap();
    let mut parked: Vec<(Uuid, String)> = Vec::new();
    crate::common::eventually("the bad deadline is parked", async || {
        let mut conn = svc.db.read().await.unwrap();
        parked = custos_kit::with_conn!(&mut conn, c => {
            sqlx::query_as("SELECT escalation_id, error FROM parked_deadlines")
                .fetch_all(&mut *c)
                .await
                .unwrap()
        });
        !parked.is_empty()
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, bad, "exactly the deadline that failed");
    assert!(parked[0].1.contains("has no tier 2"), "{}", parked[0].1);
    let mut conn = svc.db.read().await.unwrap();
    for id in [opened[0], opened[2]] {
        assert!(
            store::escalation(&mut conn, id)
                .await
                .unwrap()
                .unwrap()
                .exhausted
        );
    }
}

const FILE: &str = r#"
[[contacts]]
key = "sam"
display_name = "Sam Patel"
email = "sam@example.org"
token_subject = "sam"

[[contacts]]
key = "alex"
display_name = "Alex Jones"
email = "alex@example.org"
token_subject = "alex"
deputy = "sam"

[lists]
internal_audit = ["sam", "alex"]

[[policies]]
trigger = "evidence_required"
repeat_minutes = 30
[[policies.tiers]]
lists = ["internal_audit"]
deadline_minutes = 15
"#;

async fn a_directory_file_seeds_an_empty_directory_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.toml");
    std::fs::write(&path, FILE).unwrap();
    let svc = TestEscalation::start_with(
        backend,
        custos_escalation::EscalationSettings {
            directory_file: Some(path.clone()),
            ..settings(NOWHERE, NOWHERE)
        },
        |_| {},
    )
    .await;
    let mut owner = svc.owner();
    let contacts = owner
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .contacts;
    let names: Vec<_> = contacts.iter().map(|c| c.display_name.as_str()).collect();
    assert_eq!(names, ["Alex Jones", "Sam Patel"]);
    assert_eq!(contacts[0].deputy_contact_id, contacts[1].id);
    let policies = owner
        .list_escalation_policies(pb::ListEscalationPoliciesRequest {})
        .await
        .unwrap()
        .into_inner()
        .policies;
    let evidence = &policies[pb::EscalationTrigger::EvidenceRequired as usize - 1];
    assert_eq!(
        (evidence.revision, evidence.updated_by.as_str()),
        (1, "escalation.directory_file")
    );
    assert!(evidence.problems.is_empty(), "{:?}", evidence.problems);
    // Applied again (another replica, a restart): the directory is not empty.
    let file = DirectoryFile::load(&path).unwrap();
    assert!(!file.apply(&svc.db).await.unwrap());
    let again = owner
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(again.len(), 2);

    // A mistake stops the start, naming the file and the mistake.
    std::fs::write(
        &path,
        FILE.replace("deadline_minutes = 15", "deadline_minutes = 0"),
    )
    .unwrap();
    let database = custos_testing::TestDatabase::new(backend).await;
    let err = custos_kit::service::App::build::<Escalation>(custos_testing::config(
        &database,
        custos_escalation::EscalationSettings {
            directory_file: Some(path.clone()),
            mail_dir: Some(dir.path().join("mail")),
            ..settings(NOWHERE, NOWHERE)
        },
    ))
    .await
    .unwrap_err();
    let text = custos_kit::error::DisplayChain(&err).to_string();
    assert!(
        text.contains("escalation.directory_file") && text.contains("deadline_minutes"),
        "{text}"
    );
}

on_both_backends!(
    due_deadlines_fire_from_the_database_after_a_restart,
    a_deadline_that_cannot_be_applied_is_parked_and_the_rest_fire,
    a_directory_file_seeds_an_empty_directory_once,
);
