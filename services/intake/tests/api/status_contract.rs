//! The store's side of classification's feed, on both backends: a report's status moves
//! with its assessments in order, never back, and reopens when classification requeues it.

use custos_intake::{
    report::Kind,
    store::{self, Submitted},
};
use custos_testing::{Backend, on_both_backends};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store_contract::{begin, new_report, read, start, submission};

/// Assessments move a report's status in order; one applied late never undoes a later
/// one, and an unknown report is said to be unknown.
async fn assessment_status_never_goes_back(backend: Backend) {
    use custos_intake::report::Status;
    let (_intake, store) = start(backend).await;
    let Submitted::Created(report) = store
        .submit(submission(
            &new_report(Kind::Event, true),
            None,
            OffsetDateTime::now_utc(),
        ))
        .await
        .unwrap()
    else {
        panic!("created")
    };
    let apply = async |sequence: i32, status: Option<Status>, id: Uuid| {
        let mut tx = begin(&store).await;
        let found = store::apply_assessment(&mut tx, id, sequence, status)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        found
    };
    let status = async || {
        store::report(read(&store).await, report.id)
            .await
            .unwrap()
            .unwrap()
            .status
    };
    assert!(apply(1, Some(Status::UnderAssessment), report.id).await);
    assert_eq!(status().await, Status::UnderAssessment);
    assert!(apply(3, Some(Status::EscalatedToIncident), report.id).await);
    assert!(
        apply(2, Some(Status::Closed), report.id).await,
        "known, but older"
    );
    assert_eq!(status().await, Status::EscalatedToIncident);
    assert!(
        apply(3, Some(Status::Closed), report.id).await,
        "the same again"
    );
    assert_eq!(status().await, Status::EscalatedToIncident);
    // An outcome this version does not know changes nothing; a later one it knows applies.
    assert!(apply(4, None, report.id).await);
    assert_eq!(status().await, Status::EscalatedToIncident);
    assert!(apply(4, Some(Status::Closed), report.id).await);
    assert_eq!(status().await, Status::Closed);
    assert!(!apply(1, Some(Status::Closed), Uuid::now_v7()).await);
    // Classification requeued it: closed becomes under assessment, unless a later
    // assessment than the one it returned from is applied.
    let reopen = async |sequence: i32| {
        let mut tx = begin(&store).await;
        assert!(store::reopen(&mut tx, report.id, sequence).await.unwrap());
        tx.commit().await.unwrap();
    };
    reopen(3).await;
    assert_eq!(status().await, Status::Closed, "assessment 4 came after");
    reopen(4).await;
    assert_eq!(status().await, Status::UnderAssessment);
    // The requeue after assessment 5 arrives before assessment 5 itself (parked and
    // replayed): the report stays under assessment.
    reopen(5).await;
    assert!(apply(5, Some(Status::Closed), report.id).await);
    assert_eq!(
        status().await,
        Status::UnderAssessment,
        "assessment 5 arrived late"
    );
    assert!(apply(6, Some(Status::Closed), report.id).await);
    assert_eq!(status().await, Status::Closed);
    let after = store::report(read(&store).await, report.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.revision, 1,
        "a status is not an amendment of the report"
    );
}

on_both_backends!(assessment_status_never_goes_back);
