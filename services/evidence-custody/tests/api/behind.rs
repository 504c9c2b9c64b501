//! Entries and records written behind the service, with the database's own credentials
//! or past its triggers: an entry the service did not sign, a signature copied to
//! another position, entries hidden behind an item's count set back, and a record's
//! times or hold placer changed by hand. Each is named by VerifyChain.

use custos_evidence_custody::chain::{EntryBody, entry_hash, hex, parse_hash};
use custos_proto::custody::v1 as pb;
use custos_testing::{Backend, on_both_backends};

use crate::{
    common::{TestCustody, raw, register},
    tamper::{bypassing, read, verify},
};

/// An entry written by the database role itself, past every trigger (an INSERT, the
/// log's size and the item's count each moved by one, as the service moves them), hashes
/// and links correctly but carries no signature of the service's: VerifyChain names it
/// and no checkpoint is signed over it.
async fn an_entry_the_service_did_not_write_is_named(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    svc.sign().await;
    let id = uuid::Uuid::parse_str(&item.id).unwrap();
    let mut conn = svc.db.read().await.unwrap();
    let entries = custos_evidence_custody::store::entries_of(&mut conn, id, 0, None)
        .await
        .unwrap();
    let size = custos_evidence_custody::store::log_size(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let last = entries.last().unwrap();
    let mut body: EntryBody = serde_json::from_str(&last.body).unwrap();
    body.sequence = last.sequence + 1;
    body.log_index = size;
    body.action = "CUSTODY_ACTION_HOLD_LIFTED".into();
    body.actor = "olivia".into();
    let bytes = body.to_bytes();
    let previous = parse_hash(&last.entry_hash).unwrap();
    let hash = entry_hash(&previous, &bytes);
    let forger = custos_evidence_custody::signing::Signer::generate().unwrap();
    let id_value = match backend {
        Backend::Postgres => format!("'{id}'"),
        Backend::Sqlite => format!("X'{}'", id.simple()),
    };
    // No trigger is bypassed: the database lets its own role append.
    let insert = format!(
        "INSERT INTO custody_entries (log_index, item_id, sequence, action, at, previous_hash, \
         entry_hash, signature, body) VALUES ({size}, {id_value}, {}, 12, \
         '2026-12-06T10:00:00.000000Z', '{}', '{}', '{}', '{}')",
        body.sequence,
        hex(&previous),
        hex(&hash),
        hex(&forger.sign(&hash)),
        String::from_utf8(bytes).unwrap().replace('\'', "''")
    );
    let head = format!(
        "UPDATE evidence_items SET entry_count = entry_count + 1, head_hash = '{}'",
        hex(&hash)
    );
    raw(
        &svc.db,
        &[&insert, "UPDATE custody_log SET size = size + 1", &head],
    )
    .await;
    let p = verify(&mut responder, &item.id)
        .await
        .first_problem
        .unwrap();
    assert_eq!(p.sequence, 2, "{p:?}");
    assert!(p.description.contains("signature"), "{p:?}");
    let signer = svc.signer();
    let refused = custos_evidence_custody::checkpoint::sign(&svc.db, &signer)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("signature"), "{refused}");
}

/// Entries hidden by setting the item's count back (the rows kept, matching every
/// checkpoint) are named: they committed before the record was read, yet it does not
/// count them.
async fn entries_hidden_behind_the_items_count_are_named(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    read(&mut responder, &item.id).await;
    read(&mut responder, &item.id).await;
    let id = uuid::Uuid::parse_str(&item.id).unwrap();
    let mut conn = svc.db.read().await.unwrap();
    let entries = custos_evidence_custody::store::entries_of(&mut conn, id, 0, None)
        .await
        .unwrap();
    drop(conn);
    let head = entries[0].entry_hash.clone();
    bypassing(
        &svc.db,
        backend,
        &[&format!(
            "UPDATE evidence_items SET entry_count = 1, head_hash = '{head}'"
        )],
    )
    .await;
    // The read cannot be recorded where the record says the next entry goes: the
    // verification fails, saying what it found.
    let status = responder
        .verify_chain(pb::VerifyChainRequest {
            item_id: item.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(crate::common::reason(&status), "CHAIN_BROKEN", "{status:?}");
    assert!(status.message().contains("not counted"), "{status:?}");
    let get = responder
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(crate::common::reason(&get), "CHAIN_BROKEN", "{get:?}");
}

/// A signature copied, with its entry's hash, to a new position of the log (the
/// database role can append) does not verify there: no checkpoint is signed over it,
/// and every verification names the position.
async fn a_copied_entry_is_named(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    svc.sign().await;
    let id = uuid::Uuid::parse_str(&item.id).unwrap();
    let mut conn = svc.db.read().await.unwrap();
    let entries = custos_evidence_custody::store::entries_of(&mut conn, id, 0, None)
        .await
        .unwrap();
    let size = custos_evidence_custody::store::log_size(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let e = &entries[0];
    let other = match backend {
        Backend::Postgres => format!("'{}'", uuid::Uuid::now_v7()),
        Backend::Sqlite => format!("X'{}'", uuid::Uuid::now_v7().simple()),
    };
    let insert = format!(
        "INSERT INTO custody_entries (log_index, item_id, sequence, action, at, previous_hash, \
         entry_hash, signature, body) VALUES ({size}, {other}, 1, 1, \
         '2026-12-06T10:00:00.000000Z', '{}', '{}', '{}', '{}')",
        e.previous_hash,
        e.entry_hash,
        e.signature,
        e.body.replace('\'', "''")
    );
    raw(
        &svc.db,
        &[&insert, "UPDATE custody_log SET size = size + 1"],
    )
    .await;
    let p = verify(&mut responder, &item.id)
        .await
        .first_problem
        .unwrap();
    assert_eq!(p.log_index, size, "{p:?}");
    assert!(p.description.contains("signature"), "{p:?}");
    let signer = svc.signer();
    assert!(
        custos_evidence_custody::checkpoint::sign(&svc.db, &signer)
            .await
            .is_err()
    );
}

/// The record's times and the hold's placer are the chain's too: a content time or a
/// hold's placer changed by hand is named.
async fn times_and_placers_changed_by_hand_are_named(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    crate::common::upload(&mut responder, &item.id, b"bytes", "", 1024)
        .await
        .unwrap();
    bypassing(
        &svc.db,
        backend,
        &["UPDATE evidence_items SET content_added_at = '2020-01-01T00:00:00.000000Z'"],
    )
    .await;
    let p = verify(&mut responder, &item.id)
        .await
        .first_problem
        .unwrap();
    assert_eq!(p.sequence, 2, "{p:?}");
    assert!(p.description.contains("content's time"), "{p:?}");

    let held = register(&mut responder, "INC-2026-000001").await;
    svc.officer()
        .place_legal_hold(pb::PlaceLegalHoldRequest {
            item_id: held.id.clone(),
            revision: 1,
            reason: "matter 9".into(),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap();
    let statement = format!(
        "UPDATE evidence_items SET hold = REPLACE(hold, 'olivia', 'mallory') WHERE reference = '{}'",
        held.reference
    );
    bypassing(&svc.db, backend, &[&statement]).await;
    let p = verify(&mut responder, &held.id)
        .await
        .first_problem
        .unwrap();
    assert_eq!(p.sequence, 2, "{p:?}");
    assert!(p.description.contains("hold's placer"), "{p:?}");
}

on_both_backends!(
    an_entry_the_service_did_not_write_is_named,
    entries_hidden_behind_the_items_count_are_named,
    a_copied_entry_is_named,
    times_and_placers_changed_by_hand_are_named,
);
