//! The verbs: transfers, examinations, seals, legal holds, release and disposal, with
//! their guards (the state, the hold, the officer or internal audit, the revision read)
//! and each recorded in the chain.

use custos_proto::custody::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::{TestCustody, actions, fields, reason, register};

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn an_item_moves_through_custody_and_every_step_is_in_its_chain(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();
    let mut officer = svc.officer();
    let item = register(&mut responder, "INC-2026-000001").await;
    let transfer = pb::TransferCustodyRequest {
        item_id: item.id.clone(),
        revision: 1,
        to_custodian: "Forensics Ltd (J. Doe)".into(),
        purpose: "forensic imaging".into(),
        storage_location: "Forensics Ltd, safe 1".into(),
        idempotency_key: key(),
    };
    let moved = responder
        .transfer_custody(transfer.clone())
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(moved.custodian, "Forensics Ltd (J. Doe)");
    assert_eq!(moved.storage_location, "Forensics Ltd, safe 1");
    assert_eq!(moved.revision, 2);
    // A retry returns the same, and does not move it twice.
    let again = responder
        .transfer_custody(transfer.clone())
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(again, moved);
    // A stale revision (another key) is ABORTED with the current one.
    let mut stale = transfer.clone();
    stale.idempotency_key = key();
    let aborted = responder.transfer_custody(stale).await.unwrap_err();
    assert_eq!(
        (aborted.code(), reason(&aborted)),
        (Code::Aborted, "ITEM_CHANGED".into())
    );

    let examined = responder
        .record_examination(pb::RecordExaminationRequest {
            item_id: item.id.clone(),
            revision: 2,
            method: "Autopsy 4.21 on a working copy".into(),
            findings: "browser history shows the phishing page".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    let sealed = responder
        .seal_evidence(pb::SealEvidenceRequest {
            item_id: item.id.clone(),
            revision: examined.revision,
            seal: "bag 00417".into(),
            reason: "examination done".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(sealed.state(), pb::evidence_item::State::Sealed);
    // Sealed: no examination, and the error names what is allowed.
    let refused = responder
        .record_examination(pb::RecordExaminationRequest {
            item_id: item.id.clone(),
            revision: sealed.revision,
            method: "x".into(),
            findings: "y".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused)),
        (Code::FailedPrecondition, "ILLEGAL_TRANSITION".into())
    );
    assert!(refused.message().contains("UnsealEvidence"), "{refused:?}");

    // A legal hold: only the officer or internal audit place it; it refuses disposal.
    let hold = |revision| pb::PlaceLegalHoldRequest {
        item_id: item.id.clone(),
        revision,
        reason: "litigation hold, matter 2026/114".into(),
        idempotency_key: key(),
    };
    let not_theirs = responder
        .place_legal_hold(hold(sealed.revision))
        .await
        .unwrap_err();
    assert_eq!(
        (not_theirs.code(), reason(&not_theirs)),
        (Code::PermissionDenied, "NOT_AUTHORISED".into())
    );
    let held = officer
        .place_legal_hold(hold(sealed.revision))
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(held.legal_hold.as_ref().unwrap().placed_by, "olivia");
    let dispose = |revision| pb::DisposeEvidenceRequest {
        item_id: item.id.clone(),
        revision,
        method: "shredded".into(),
        reason: "no longer needed".into(),
        idempotency_key: key(),
    };
    let on_hold = officer
        .dispose_evidence(dispose(held.revision))
        .await
        .unwrap_err();
    assert_eq!(
        (on_hold.code(), reason(&on_hold)),
        (Code::FailedPrecondition, "LEGAL_HOLD".into())
    );
    assert!(on_hold.message().contains("matter 2026/114"), "{on_hold:?}");
    let release = svc
        .auditor()
        .release_evidence(pb::ReleaseEvidenceRequest {
            item_id: item.id.clone(),
            revision: held.revision,
            released_to: "owner".into(),
            reason: "returned".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&release), "LEGAL_HOLD");
    let lifted = svc
        .auditor()
        .lift_legal_hold(pb::LiftLegalHoldRequest {
            item_id: item.id.clone(),
            revision: held.revision,
            reason: "matter settled".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert!(lifted.legal_hold.is_none());
    let disposed = officer
        .dispose_evidence(dispose(lifted.revision))
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(disposed.state(), pb::evidence_item::State::Disposed);
    // Final: nothing more.
    let after = officer
        .transfer_custody(pb::TransferCustodyRequest {
            revision: disposed.revision,
            idempotency_key: key(),
            ..transfer
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&after), "ILLEGAL_TRANSITION");
    assert!(after.message().contains("nothing"), "{after:?}");

    use pb::CustodyAction as A;
    assert_eq!(
        actions(&mut officer, &item.id).await,
        [
            A::Registered,
            A::Transferred,
            A::Examined,
            A::Sealed,
            A::HoldPlaced,
            A::HoldLifted,
            A::Disposed,
            A::Accessed
        ]
    );
    let entries = officer
        .list_custody_entries(pb::ListCustodyEntriesRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let t = &entries[1];
    assert_eq!(
        (t.details["from"].as_str(), t.details["to"].as_str()),
        ("Rhys Evans", "Forensics Ltd (J. Doe)")
    );
    assert_eq!(t.details["purpose"], "forensic imaging");
    assert_eq!(t.reason, "forensic imaging");
    assert_eq!(
        entries[2].details["findings"],
        "browser history shows the phishing page"
    );
    // The whole lifecycle verifies, the record agreeing with its chain.
    let v = officer
        .verify_chain(pb::VerifyChainRequest {
            item_id: item.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.verified, "{v:?}");
}

async fn a_derived_copy_records_its_parent_and_an_item_is_released(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    svc.incident("INC-2026-000002").await;
    let mut responder = svc.responder();
    let parent = register(&mut responder, "INC-2026-000001").await;
    let mut copy = crate::common::registration("INC-2026-000001");
    copy.derived_from_item_id = parent.reference.clone();
    // A parent without content has nothing to copy.
    let empty = responder.register_evidence(copy.clone()).await.unwrap_err();
    assert_eq!(reason(&empty), "NO_CONTENT");
    let content = crate::common::bytes(3000);
    crate::common::upload(&mut responder, &parent.id, &content, "", 1000)
        .await
        .unwrap();
    copy.idempotency_key = key();
    let derived = responder
        .register_evidence(copy.clone())
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    let from = derived.derived_from.clone().unwrap();
    assert_eq!(from.parent_item_id, parent.id);
    assert_eq!(from.parent_reference, parent.reference);
    assert_eq!(from.parent_sha256, crate::common::sha256(&content));
    // Another incident's item is no parent.
    let mut elsewhere = copy.clone();
    elsewhere.incident_id = "INC-2026-000002".into();
    elsewhere.idempotency_key = key();
    let refused = responder.register_evidence(elsewhere).await.unwrap_err();
    assert_eq!(fields(&refused), ["derived_from_item_id"]);
    use pb::CustodyAction as A;
    assert_eq!(
        actions(&mut responder, &parent.id).await,
        [A::Registered, A::ContentAdded, A::Derived, A::Accessed]
    );
    // Released by the officer: final, and still verifying.
    let mut officer = svc.officer();
    let released = officer
        .release_evidence(pb::ReleaseEvidenceRequest {
            item_id: derived.id.clone(),
            revision: derived.revision,
            released_to: "Thames Valley Police, PC 1234".into(),
            reason: "handed over".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(released.state(), pb::evidence_item::State::Released);
    for id in [&parent.id, &derived.id] {
        let v = officer
            .verify_chain(pb::VerifyChainRequest {
                item_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(v.verified, "{id}: {v:?}");
    }
}

async fn bad_verbs_name_their_fields(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();
    let status = responder
        .transfer_custody(pb::TransferCustodyRequest {
            item_id: String::new(),
            revision: 0,
            to_custodian: String::new(),
            purpose: "\u{202E}evil".into(),
            storage_location: String::new(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&status),
        [
            "item_id",
            "revision",
            "idempotency_key",
            "to_custodian",
            "purpose",
            "storage_location"
        ]
    );
    let missing = responder
        .seal_evidence(pb::SealEvidenceRequest {
            item_id: "EVD-2026-999999".into(),
            revision: 1,
            seal: "bag".into(),
            reason: "r".into(),
            idempotency_key: key(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&missing), "ITEM_NOT_FOUND");
}

on_both_backends!(
    a_derived_copy_records_its_parent_and_an_item_is_released,
    an_item_moves_through_custody_and_every_step_is_in_its_chain,
    bad_verbs_name_their_fields,
);
