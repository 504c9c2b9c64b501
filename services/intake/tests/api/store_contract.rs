//! The store contract: every store operation behaves the same on SQLite and PostgreSQL.

use custos_intake::{
    report::{Contact, Details, FixVerdict, FollowUpSource, Kind, Medium, NewReport, RiskToOthers},
    store::{
        self, Amendment, FollowUpRow, ListFilter, Page, ProviderReportRow, ProviderResponseRow,
        Store, Submission, Submitted,
    },
};
use custos_kit::{
    audit,
    auth::{Principal, Role},
    outbox::{self, Cursor, NewEvent},
    storage::{DbTime, Read, Tx},
};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::common::TestIntake;

pub(crate) fn new_report(kind: Kind, contact: bool) -> NewReport {
    NewReport {
        kind,
        details: Details {
            category: if kind == Kind::Event {
                "equipment_theft_or_loss"
            } else {
                "human_error"
            }
            .into(),
            medium: Medium::Electronic,
            data_involved: "laptop".into(),
            risk_to_others: Some(RiskToOthers::Unknown),
            risk_details: String::new(),
            incident_location: "office".into(),
            inventory_numbers: vec!["A1".into()],
            occurred_at: Some(OffsetDateTime::now_utc() - Duration::hours(1)),
            affected_location: String::new(),
            circumstances: "gone".into(),
            symptoms: String::new(),
            personal_information: false,
            malware_suspected: false,
        },
        contact: contact.then(|| Contact {
            name: "A".into(),
            phone: "01632 960123".into(),
            email: String::new(),
        }),
    }
}

pub(crate) fn submission(report: &NewReport, key: Option<&str>, at: OffsetDateTime) -> Submission {
    let id = Uuid::now_v7();
    Submission {
        id,
        report: report.clone(),
        submitted_by: report.contact.as_ref().map(|_| "alex".to_owned()),
        submitted_at: DbTime::new(at),
        reference_prefix: "SIR-2026-".into(),
        idempotency_hash: key
            .map(|k| k.as_bytes().to_vec())
            .unwrap_or_else(|| id.as_bytes().to_vec()),
        request_hash: vec![1, 2, 3],
        receipt_hash: report.contact.is_none().then(|| id.as_bytes().to_vec()),
        event: NewEvent::new(id, "", at, &pb::ReportSubmitted::default()),
    }
}

/// Every event in the outbox, once all have settled. On PostgreSQL an event is released
/// only once every older transaction in the cluster has finished (see the kit's outbox),
/// and other tests share the cluster, so this waits while any is held back.
async fn all_events(store: &Store) -> Vec<outbox::StoredEvent> {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        tick.tick().await;
        let batch = outbox::read_after(store.db().read().await.unwrap(), Cursor::START, 1000)
            .await
            .unwrap();
        assert!(!batch.full, "fewer than 1000 events in a test");
        if !batch.held_back {
            return batch.events;
        }
        assert!(tokio::time::Instant::now() < deadline, "events settle");
    }
}

pub(crate) async fn start(backend: Backend) -> (TestIntake, Store) {
    let intake = TestIntake::start(backend).await;
    let store = Store::new(intake.db.clone());
    (intake, store)
}

pub(crate) async fn read(store: &Store) -> Read {
    store.db().read().await.unwrap()
}

pub(crate) async fn begin(store: &Store) -> Tx {
    store.db().begin().await.unwrap()
}

async fn submit_read_and_idempotency(backend: Backend) {
    let (_intake, store) = start(backend).await;
    let now = OffsetDateTime::now_utc();
    let named = new_report(Kind::Event, true);
    let Submitted::Created(first) = store
        .submit(submission(&named, Some("k1"), now))
        .await
        .unwrap()
    else {
        panic!("created")
    };
    assert_eq!(first.reference, "SIR-2026-000001");
    assert_eq!(first.revision, 1);
    assert_eq!(
        (first.kind, first.status),
        (Kind::Event, custos_intake::report::Status::Received)
    );
    assert_eq!(first.details.0, named.details);
    let original = store::original(store.db().read().await.unwrap(), first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(original.details, named.details);
    let Submitted::Existing(again) = store
        .submit(submission(&named, Some("k1"), now))
        .await
        .unwrap()
    else {
        panic!("existing")
    };
    assert_eq!(again.id, first.id);
    assert_eq!(again.request_hash, Some(vec![1, 2, 3]));

    let anon = new_report(Kind::Weakness, false);
    let s = submission(&anon, None, now);
    let (anon_id, receipt) = (s.id, s.receipt_hash.clone().unwrap());
    let Submitted::Created(second) = store.submit(s).await.unwrap() else {
        panic!("created")
    };
    assert_eq!(second.reference, "SIR-2026-000002");
    assert!(second.anonymous && second.contact.is_none() && second.submitted_by.is_none());
    let mut c = read(&store).await;
    assert_eq!(
        store::report_by_receipt(&mut c, receipt)
            .await
            .unwrap()
            .unwrap()
            .id,
        anon_id
    );
    assert_eq!(
        store::report_by_reference(&mut c, "SIR-2026-000001")
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    assert!(
        store::report(&mut c, Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );

    // Two reports, two events, in order, with the references filled in.
    let events = all_events(&store).await;
    let refs: Vec<_> = events
        .iter()
        .map(|e| e.aggregate_reference.as_str())
        .collect();
    assert_eq!(refs, ["SIR-2026-000001", "SIR-2026-000002"]);
}

async fn list_filters_and_pages(backend: Backend) {
    let (_intake, store) = start(backend).await;
    let base = OffsetDateTime::now_utc() - Duration::minutes(10);
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = new_report(if i < 3 { Kind::Event } else { Kind::Weakness }, true);
        let s = submission(&r, None, base + Duration::seconds(i));
        ids.push(s.id);
        store.submit(s).await.unwrap();
    }
    let mut c = read(&store).await;
    let all = store::list(&mut c, &ListFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    let page = store::list(
        &mut c,
        &ListFilter::default(),
        Some(Page {
            submitted_at: all[1].submitted_at,
            id: all[1].id,
        }),
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
    let weaknesses = store::list(
        &mut c,
        &ListFilter {
            kind: Some(Kind::Weakness),
            ..Default::default()
        },
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(weaknesses.len(), 1);
    let window = ListFilter {
        submitted_after: Some(DbTime::new(base + Duration::seconds(1))),
        submitted_before: Some(DbTime::new(base + Duration::seconds(3))),
        ..Default::default()
    };
    assert_eq!(
        store::list(&mut c, &window, None, 10).await.unwrap().len(),
        2
    );
    let mine = ListFilter {
        submitted_by: Some("someone-else".into()),
        ..Default::default()
    };
    assert!(
        store::list(&mut c, &mine, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn amend_history_and_follow_ups(backend: Backend) {
    let (_intake, store) = start(backend).await;
    let r = new_report(Kind::Event, true);
    let s = submission(&r, None, OffsetDateTime::now_utc());
    let id = s.id;
    store.submit(s).await.unwrap();
    let amendment = |row: &store::ReportRow| {
        let mut details = row.details.0.clone();
        details.medium = Medium::Paper;
        Ok(Amendment {
            details,
            contact: row.contact().cloned(),
            changes: vec![("details.medium".into(), "E".into(), "P".into())],
            reason: "fix".into(),
            changed_by: "desk".into(),
            at: DbTime::now(),
            event: NewEvent::new(
                row.id,
                row.reference.clone(),
                OffsetDateTime::now_utc(),
                &pb::ReportAmended::default(),
            ),
        })
    };
    let mut tx = begin(&store).await;
    let (row, revision) = store::amend(&mut tx, id, Some(1), amendment).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((row.revision, revision.number), (2, 2));
    assert!(row.senior_notice);
    let original = store::original(read(&store).await, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(original.details.medium, Medium::Electronic, "original kept");
    let mut tx = begin(&store).await;
    assert!(matches!(
        store::amend(&mut tx, id, Some(1), amendment).await,
        Err(custos_intake::error::IntakeError::RevisionMismatch { .. })
    ));
    assert!(matches!(
        store::amend(&mut tx, Uuid::now_v7(), None, amendment).await,
        Err(custos_intake::error::IntakeError::NotFound)
    ));
    drop(tx);
    assert_eq!(
        store::revisions(read(&store).await, id)
            .await
            .unwrap()
            .len(),
        1
    );

    let follow_up = FollowUpRow {
        id: Uuid::now_v7(),
        added_at: DbTime::now(),
        source: FollowUpSource::Receipt,
        added_by: None,
        text: "more".into(),
    };
    let event = NewEvent::new(
        id,
        "x",
        OffsetDateTime::now_utc(),
        &pb::FollowUpAdded::default(),
    );
    let mut tx = begin(&store).await;
    store::add_follow_up(&mut tx, id, &follow_up, &event)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let orphan = FollowUpRow {
        id: Uuid::now_v7(),
        ..follow_up.clone()
    };
    let mut tx = begin(&store).await;
    let refused = store::add_follow_up(&mut tx, Uuid::now_v7(), &orphan, &event)
        .await
        .unwrap_err();
    let status = tonic::Status::from(refused);
    assert!(
        !status.message().contains("follow_ups") && !status.message().contains("fkey"),
        "no table or constraint names reach a client: {status:?}"
    );
    drop(tx);
    assert_eq!(
        store::follow_ups(read(&store).await, id)
            .await
            .unwrap()
            .len(),
        1
    );

    let desk = Principal {
        subject: "desk".into(),
        roles: [Role::Helpdesk].into(),
    };
    let mut tx = begin(&store).await;
    audit::record(&mut tx, &desk, "report.read", "report", &[id.to_string()])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        audit::entries(read(&store).await, &id.to_string())
            .await
            .unwrap(),
        [("desk".to_owned(), "report.read".to_owned())]
    );
}

async fn provider_reports_and_overdue(backend: Backend) {
    let (_intake, store) = start(backend).await;
    let weakness = new_report(Kind::Weakness, true);
    let s = submission(&weakness, None, OffsetDateTime::now_utc());
    let report_id = s.id;
    store.submit(s).await.unwrap();
    let event = || {
        NewEvent::new(
            report_id,
            "x",
            OffsetDateTime::now_utc(),
            &pb::ProviderReportRecorded::default(),
        )
    };
    let provider = |days: i64| ProviderReportRow {
        id: Uuid::now_v7(),
        report_id,
        report_reference: String::new(),
        provider: "Acme".into(),
        provider_reference: "A-1".into(),
        reported_at: DbTime::new(OffsetDateTime::now_utc() - Duration::days(days)),
        recorded_by: "it".into(),
        recorded_at: DbTime::now(),
        verdict: FixVerdict::Pending,
        verdict_notes: String::new(),
        verdict_by: None,
        verdict_at: None,
    };
    let (old, answered, recent) = (provider(30), provider(20), provider(1));
    let mut tx = begin(&store).await;
    for p in [&old, &answered, &recent] {
        store::record_provider_report(&mut tx, p, &event())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let response = ProviderResponseRow {
        id: Uuid::now_v7(),
        provider_report_id: answered.id,
        responded_at: DbTime::now(),
        summary: "on it".into(),
        recorded_by: "it".into(),
        recorded_at: DbTime::now(),
    };
    let mut tx = begin(&store).await;
    store::record_provider_response(&mut tx, &response, |_| event())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let cutoff = DbTime::new(OffsetDateTime::now_utc() - Duration::days(10));
    let mut c = read(&store).await;
    let overdue = store::overdue_provider_reports(&mut c, cutoff, None, 10)
        .await
        .unwrap();
    assert_eq!(overdue.iter().map(|p| p.id).collect::<Vec<_>>(), [old.id]);
    let mut tx = begin(&store).await;
    store::record_fix_verdict(
        &mut tx,
        old.id,
        FixVerdict::Effective,
        "retested",
        "it",
        DbTime::now(),
        |_| event(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(
        store::overdue_provider_reports(&mut c, cutoff, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store::provider_reports_for(&mut c, report_id)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        store::provider_responses(&mut c, answered.id)
            .await
            .unwrap()
            .len(),
        1
    );

    let event_report = new_report(Kind::Event, true);
    let s = submission(&event_report, None, OffsetDateTime::now_utc());
    let event_id = s.id;
    store.submit(s).await.unwrap();
    let not_weakness = ProviderReportRow {
        report_id: event_id,
        ..provider(1)
    };
    let mut tx = begin(&store).await;
    assert!(matches!(
        store::record_provider_report(&mut tx, &not_weakness, &event()).await,
        Err(custos_intake::error::IntakeError::NotAWeakness)
    ));
}

/// Many submissions at once: new keys, keys already stored, no key, and one key repeated
/// among them. Every caller hears its own outcome, each key creates one report, and each
/// new report has exactly one event. (References are unique, not gap-free: on PostgreSQL
/// identical keys racing each other may each take a number.)
async fn concurrent_submissions_each_hear_their_outcome(backend: Backend) {
    let (_intake, store) = start(backend).await;
    let now = OffsetDateTime::now_utc();
    let report = new_report(Kind::Event, true);
    for key in ["old-1", "old-2"] {
        store
            .submit(submission(&report, Some(key), now))
            .await
            .unwrap();
    }
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..60 {
        let key = match i % 6 {
            0 => Some("old-1".to_owned()),
            1 => Some("old-2".to_owned()),
            2 => Some("repeated".to_owned()),
            3 => None,
            _ => Some(format!("new-{i}")),
        };
        let (store, s) = (store.clone(), submission(&report, key.as_deref(), now));
        calls.spawn(async move { (key, store.submit(s).await.unwrap()) });
    }
    let (mut created, mut existing) = (Vec::new(), Vec::new());
    while let Some(call) = calls.join_next().await {
        match call.unwrap() {
            (_, Submitted::Created(row)) => created.push(row.reference),
            (key, Submitted::Existing(row)) => existing.push((key.unwrap(), row.reference)),
        }
    }
    // Of 60: 1 for "repeated", 10 without a key, 20 with new keys; 29 retries.
    assert_eq!(created.len(), 31);
    assert_eq!(existing.len(), 29);
    // Every retry of "repeated" found the one report that key created.
    let repeated: Vec<_> = existing.iter().filter(|(k, _)| k == "repeated").collect();
    assert_eq!(repeated.len(), 9);
    assert!(created.contains(&repeated[0].1));
    for (key, reference) in &existing {
        let expected = match key.as_str() {
            "old-1" => "SIR-2026-000001",
            "old-2" => "SIR-2026-000002",
            _ => repeated[0].1.as_str(),
        };
        assert_eq!(reference, expected, "{key}");
    }
    let mut refs: Vec<_> = all_events(&store)
        .await
        .iter()
        .map(|e| e.aggregate_reference.clone())
        .collect();
    refs.sort();
    created.extend(["SIR-2026-000001".into(), "SIR-2026-000002".into()]);
    created.sort();
    created.dedup();
    assert_eq!(created.len(), 33, "every new report has its own reference");
    assert_eq!(refs, created, "one event per new report");
}

/// A read whose audit entry cannot be written because the database is unreachable fails
/// as unavailable (the caller may retry the read), not as an internal error.
async fn audit_with_the_database_gone_is_unavailable(backend: Backend) {
    let (_intake, store) = start(backend).await;
    let desk = Principal {
        subject: "desk".into(),
        roles: [Role::Helpdesk].into(),
    };
    store
        .db()
        .audit(&desk, "report.read", "report", &["r1".into()])
        .await
        .unwrap();
    store.db().close().await;
    let error = store
        .db()
        .audit(&desk, "report.read", "report", &["r1".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(error, custos_kit::storage::StorageError::Unavailable(_)),
        "{error:?}"
    );
}

on_both_backends!(
    audit_with_the_database_gone_is_unavailable,
    submit_read_and_idempotency,
    concurrent_submissions_each_hear_their_outcome,
    list_filters_and_pages,
    amend_history_and_follow_ups,
    provider_reports_and_overdue
);
