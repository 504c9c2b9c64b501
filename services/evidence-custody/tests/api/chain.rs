//! Verification and reports: an untouched chain verifies against the signed checkpoint
//! (entries after it counted), the checkpoint's signature checks with the public key,
//! and a custody report of an item or an incident verifies offline, while any change to
//! it does not.

use custos_evidence_custody::{report, signing};
use custos_proto::custody::v1 as pb;
use custos_testing::{Backend, on_both_backends};

use crate::common::{TestCustody, bytes, register, upload};

async fn an_untouched_chain_verifies_against_the_checkpoint(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    upload(&mut responder, &item.id, &bytes(5000), "", 1000)
        .await
        .unwrap();
    let none = responder
        .verify_chain(pb::VerifyChainRequest {
            item_id: item.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.verified && none.checkpoint.is_none(), "{none:?}");
    assert_eq!(none.entries_after_checkpoint, 2);
    let signed = svc.sign().await;
    let v = responder
        .verify_chain(pb::VerifyChainRequest {
            item_id: item.reference.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.verified, "{v:?}");
    assert!(v.content_verified);
    // Registered, content added, the first verification's read; this one's read comes after.
    assert_eq!(v.entries_checked, 3);
    assert_eq!(v.entries_after_checkpoint, 0);
    assert_eq!(v.checkpoint.as_ref().unwrap().tree_size, signed.tree_size);

    let cp = responder
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let doc = cp.checkpoint.unwrap().signed.unwrap();
    assert_eq!(doc.algorithm, "Ed25519");
    assert_eq!(doc.key_id, cp.key_id);
    let key = signing::public_key(&cp.public_key).unwrap();
    signing::verify(&key, &doc.document, &doc.signature).unwrap();
    let note = String::from_utf8(doc.document).unwrap();
    assert!(note.starts_with("custos custody log v1\n"), "{note}");
    assert!(
        note.contains(&format!("size {}\n", signed.tree_size)),
        "{note}"
    );
}

async fn a_custody_report_verifies_offline_and_a_changed_one_does_not(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    svc.incident("INC-2026-000002").await;
    let mut responder = svc.responder();
    let a = register(&mut responder, "INC-2026-000001").await;
    let b = register(&mut responder, "INC-2026-000001").await;
    register(&mut responder, "INC-2026-000002").await;
    svc.sign().await;
    let public = responder
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .public_key;

    let of_incident = responder
        .get_custody_report(pb::GetCustodyReportRequest {
            scope: Some(pb::get_custody_report_request::Scope::IncidentId(
                "INC-2026-000001".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let verified = report::verify(&of_incident.document, &of_incident.signature, &public).unwrap();
    assert_eq!(verified.scope, "INC-2026-000001");
    assert_eq!(verified.items, 2);
    // Each item: registered, and the report's own read.
    assert_eq!(verified.entries, 4);
    assert_eq!(verified.checkpoint_size, Some(3));
    let text = String::from_utf8(of_incident.document.clone()).unwrap();
    assert!(
        text.contains(&a.reference) && text.contains(&b.reference),
        "{text}"
    );

    // Any change breaks it: the document, its signature, or the key.
    let mut changed = of_incident.document.clone();
    let at = text.find("Evidence safe 2").unwrap();
    changed[at] = b'e';
    assert!(report::verify(&changed, &of_incident.signature, &public).is_err());
    let mut bad_sig = of_incident.signature.clone();
    bad_sig[0] ^= 1;
    assert!(report::verify(&of_incident.document, &bad_sig, &public).is_err());
    let other = signing::Signer::generate().unwrap();
    let err = report::verify(
        &of_incident.document,
        &of_incident.signature,
        other.public_pem().as_bytes(),
    )
    .unwrap_err();
    assert!(err.contains("signature"), "{err}");
    // Even signed with the service's own key, a report whose entries were changed, or
    // are not in the signed log, does not verify: each chain and each inclusion proof is
    // checked.
    let service_key = svc.signer();
    let original: report::Report = serde_json::from_slice(&of_incident.document).unwrap();
    let mut forged = original.clone();
    forged.items[0].entries[0].body = forged.items[0].entries[0].body.replace("rhys", "mallory");
    let forged_doc = serde_json::to_vec(&forged).unwrap();
    let err = report::verify(&forged_doc, &service_key.sign(&forged_doc), &public).unwrap_err();
    assert!(err.contains("changed"), "{err}");
    let mut unproved = original.clone();
    let proof = &mut unproved.items[0].inclusion_proofs[0];
    assert!(!proof.is_empty(), "the first entry is under the checkpoint");
    let flipped = if proof.starts_with("00") { "11" } else { "00" };
    proof.replace_range(0..2, flipped);
    let unproved_doc = serde_json::to_vec(&unproved).unwrap();
    let err = report::verify(&unproved_doc, &service_key.sign(&unproved_doc), &public).unwrap_err();
    assert!(err.contains("not in the signed custody log"), "{err}");
    let mut other_checkpoint = original;
    other_checkpoint.checkpoint.as_mut().unwrap().key_id = other.key_id().to_owned();
    let doc = serde_json::to_vec(&other_checkpoint).unwrap();
    assert!(
        report::verify(&doc, &service_key.sign(&doc), &public)
            .unwrap_err()
            .contains("key")
    );

    let of_item = responder
        .get_custody_report(pb::GetCustodyReportRequest {
            scope: Some(pb::get_custody_report_request::Scope::ItemId(
                a.reference.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let verified = report::verify(&of_item.document, &of_item.signature, &public).unwrap();
    assert_eq!((verified.items, verified.entries), (1, 3));
}

/// Checkpoints signed while entries are being appended (reads recorded by several
/// callers at once) never mistake the entries committing meanwhile for a hole, and every
/// one of them verifies afterwards.
async fn checkpoints_signed_while_the_log_grows_verify(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    let signer = svc.signer();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut c = responder.clone();
            let id = item.id.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    c.get_evidence(pb::GetEvidenceRequest {
                        item_id: id.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    let mut signed = 0;
    while readers.iter().any(|r| !r.is_finished()) {
        if custos_evidence_custody::checkpoint::sign(&svc.db, &signer)
            .await
            .expect("no hole is seen while the log grows")
            .is_some()
        {
            signed += 1;
        }
        tokio::task::yield_now().await;
    }
    for r in readers {
        r.await.unwrap();
    }
    assert!(signed > 0);
    let v = responder
        .verify_chain(pb::VerifyChainRequest {
            item_id: item.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.verified, "{v:?}");
    assert_eq!(v.entries_checked, 101);
}

on_both_backends!(
    checkpoints_signed_while_the_log_grows_verify,
    an_untouched_chain_verifies_against_the_checkpoint,
    a_custody_report_verifies_offline_and_a_changed_one_does_not,
);
