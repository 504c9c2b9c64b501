//! Tampering behind the service's back: the database refuses changes and deletions of
//! custody records (even by the service's own role), and when someone who can bypass
//! that (a superuser, anyone with the SQLite file) edits an entry, re-hashes a chain,
//! removes the newest entries or a whole item, VerifyChain says so and names where.

use custos_evidence_custody::chain::{EntryBody, entry_hash, hex, parse_hash};
use custos_kit::storage::Db;
use custos_proto::custody::v1 as pb;
use custos_testing::{Backend, on_both_backends};

use crate::common::{Client, TestCustody, raw, raw_result, register};

/// Statements run with the append-only triggers out of the way.
pub(crate) async fn bypassing(db: &Db, backend: Backend, statements: &[&str]) {
    let mut all: Vec<&str> = Vec::new();
    match backend {
        Backend::Postgres => all.push("SET LOCAL session_replication_role = replica"),
        Backend::Sqlite => all.extend([
            "DROP TRIGGER IF EXISTS custody_entries_no_update",
            "DROP TRIGGER IF EXISTS custody_entries_no_delete",
            "DROP TRIGGER IF EXISTS evidence_items_no_delete",
            "DROP TRIGGER IF EXISTS evidence_items_keep",
            "DROP TRIGGER IF EXISTS custody_log_grows",
            "DROP TRIGGER IF EXISTS checkpoints_no_update",
            "DROP TRIGGER IF EXISTS checkpoints_no_delete",
        ]),
    }
    all.extend_from_slice(statements);
    raw(db, &all).await;
}

pub(crate) async fn verify(client: &mut Client, item_id: &str) -> pb::VerifyChainResponse {
    client
        .verify_chain(pb::VerifyChainRequest {
            item_id: item_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

pub(crate) async fn read(client: &mut Client, item_id: &str) {
    client
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item_id.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn the_database_refuses_to_change_or_remove_custody_records(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    svc.sign().await;
    crate::common::upload(&mut responder, &item.id, b"content", "", 1024)
        .await
        .unwrap();
    let refused = [
        "UPDATE custody_entries SET body = 'edited'",
        "DELETE FROM custody_entries",
        "DELETE FROM evidence_items",
        "UPDATE checkpoints SET root_hash = 'x'",
        "DELETE FROM checkpoints",
        "DELETE FROM custody_log",
    ];
    for statement in refused {
        let err = raw_result(&svc.db, statement).await.unwrap_err();
        assert!(err.contains("append-only"), "{statement}: {err}");
    }
    // What an item is and its content, once recorded, stay; its chain and the log only
    // grow.
    for statement in [
        "UPDATE evidence_items SET content_sha256 = 'ab'",
        "UPDATE evidence_items SET content_key = 'sha256/ab/other'",
        "UPDATE evidence_items SET incident_id = id",
        "UPDATE evidence_items SET description = 'something else'",
        "UPDATE evidence_items SET entry_count = 1",
    ] {
        let err = raw_result(&svc.db, statement).await.unwrap_err();
        assert!(err.contains("keep what was recorded"), "{statement}: {err}");
    }
    // Nor by jumps: one entry at a time, to an entry that exists.
    for statement in [
        "UPDATE evidence_items SET entry_count = entry_count + 2",
        "UPDATE evidence_items SET entry_count = entry_count + 1",
        "UPDATE evidence_items SET revision = revision + 2",
        "UPDATE evidence_items SET head_hash = 'ab'",
    ] {
        let err = raw_result(&svc.db, statement).await.unwrap_err();
        assert!(err.contains("keep what was recorded"), "{statement}: {err}");
    }
    let err = raw_result(&svc.db, "UPDATE custody_log SET size = size + 2")
        .await
        .unwrap_err();
    assert!(err.contains("only grows"), "{err}");
    let err = raw_result(&svc.db, "UPDATE custody_log SET size = 0")
        .await
        .unwrap_err();
    assert!(err.contains("only grows"), "{err}");
    if backend == Backend::Postgres {
        for statement in [
            "TRUNCATE custody_entries",
            "TRUNCATE evidence_items",
            "TRUNCATE checkpoints",
        ] {
            let err = raw_result(&svc.db, statement).await.unwrap_err();
            assert!(err.contains("append-only"), "{statement}: {err}");
        }
    }
    let v = verify(&mut responder, &item.id).await;
    assert!(v.verified, "{v:?}");
    assert_eq!(v.entries_checked, 2);
    assert_eq!(v.checkpoint.unwrap().tree_size, 1);
}

async fn an_edited_entry_is_named(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    read(&mut responder, &item.id).await;
    read(&mut responder, &item.id).await;
    svc.sign().await;
    bypassing(
        &svc.db,
        backend,
        &["UPDATE custody_entries SET body = REPLACE(body, '\"actor\":\"rhys\"', '\"actor\":\"mallory\"') WHERE sequence = 2"],
    )
    .await;
    let v = verify(&mut responder, &item.id).await;
    assert!(!v.verified);
    let p = v.first_problem.unwrap();
    assert_eq!(p.sequence, 2, "{p:?}");
    assert!(p.description.contains("changed"), "{p:?}");
}

/// Rewrites an item's chain from `from` on, as a careful forger who also stole the
/// service's key would: entry `from`'s body edited, every hash after it recomputed and
/// signed, the item's head moved.
async fn forge(
    db: &Db,
    backend: Backend,
    item_id: uuid::Uuid,
    from: i32,
    key: &custos_evidence_custody::signing::Signer,
) {
    let mut conn = db.read().await.unwrap();
    let entries = custos_evidence_custody::store::entries_of(&mut conn, item_id, 0, None)
        .await
        .unwrap();
    drop(conn);
    let mut previous =
        parse_hash(&entries[usize::try_from(from - 1).unwrap()].previous_hash).unwrap();
    let mut statements = Vec::new();
    for e in entries.iter().skip(usize::try_from(from - 1).unwrap()) {
        let mut body: EntryBody = serde_json::from_str(&e.body).unwrap();
        if e.sequence == from {
            body.actor = "mallory".into();
        }
        let bytes = body.to_bytes();
        let hash = entry_hash(&previous, &bytes);
        statements.push(format!(
            "UPDATE custody_entries SET body = '{}', previous_hash = '{}', entry_hash = '{}', signature = '{}' WHERE log_index = {}",
            String::from_utf8(bytes).unwrap().replace('\'', "''"),
            hex(&previous),
            hex(&hash),
            hex(&key.sign(&custos_evidence_custody::chain::signed_message(e.log_index, &hash))),
            e.log_index
        ));
        previous = hash;
    }
    statements.push(format!(
        "UPDATE evidence_items SET head_hash = '{}'",
        hex(&previous)
    ));
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    bypassing(db, backend, &refs).await;
}

async fn a_rehashed_chain_is_caught_by_the_checkpoint(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    read(&mut responder, &item.id).await;
    let first = svc.sign().await;
    read(&mut responder, &item.id).await;
    read(&mut responder, &item.id).await;
    svc.sign().await;
    let key = svc.signer();
    forge(
        &svc.db,
        backend,
        uuid::Uuid::parse_str(&item.id).unwrap(),
        3,
        &key,
    )
    .await;
    let v = verify(&mut responder, &item.id).await;
    assert!(!v.verified);
    let p = v.first_problem.unwrap();
    // The chain itself is consistent; the second checkpoint is not.
    assert_eq!(p.sequence, 0, "{p:?}");
    assert_eq!(p.log_index, first.tree_size, "{p:?}");
    assert!(
        p.description.contains("no longer matches the checkpoint"),
        "{p:?}"
    );
    // And no checkpoint is signed over the forged log.
    read(&mut responder, &item.id).await;
    let signer = svc.signer();
    let refused = custos_evidence_custody::checkpoint::sign(&svc.db, &signer)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("does not match"), "{refused}");
}

async fn removed_newest_entries_are_caught(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    read(&mut responder, &item.id).await;
    read(&mut responder, &item.id).await;
    read(&mut responder, &item.id).await;
    let checkpoint = svc.sign().await;
    assert_eq!(checkpoint.tree_size, 4);
    // Without the item's count adjusted: the chain says which entries are missing.
    bypassing(
        &svc.db,
        backend,
        &["DELETE FROM custody_entries WHERE sequence >= 3"],
    )
    .await;
    let v = verify(&mut responder, &item.id).await;
    let p = v.first_problem.unwrap();
    assert_eq!(p.sequence, 3, "{p:?}");
    assert!(p.description.contains("missing"), "{p:?}");
}

async fn removed_newest_entries_with_the_item_adjusted_are_caught_by_the_checkpoint(
    backend: Backend,
) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    read(&mut responder, &item.id).await;
    read(&mut responder, &item.id).await;
    svc.sign().await;
    let mut conn = svc.db.read().await.unwrap();
    let entries = custos_evidence_custody::store::entries_of(
        &mut conn,
        uuid::Uuid::parse_str(&item.id).unwrap(),
        0,
        None,
    )
    .await
    .unwrap();
    drop(conn);
    let head = entries[0].entry_hash.clone();
    bypassing(
        &svc.db,
        backend,
        &[
            "DELETE FROM custody_entries WHERE sequence >= 2",
            &format!("UPDATE evidence_items SET entry_count = 1, head_hash = '{head}'"),
            "UPDATE custody_log SET size = 1",
        ],
    )
    .await;
    let v = verify(&mut responder, &item.id).await;
    assert!(!v.verified, "{v:?}");
    let p = v.first_problem.unwrap();
    assert_eq!(p.log_index, 1, "{p:?}");
    assert!(p.description.contains("missing"), "{p:?}");
}

async fn a_removed_item_is_caught(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();
    let kept = register(&mut responder, "INC-2026-000001").await;
    let removed = register(&mut responder, "INC-2026-000001").await;
    read(&mut responder, &kept.id).await;
    svc.sign().await;
    bypassing(
        &svc.db,
        backend,
        &[
            "DELETE FROM custody_entries WHERE log_index = 1",
            &format!(
                "DELETE FROM evidence_items WHERE reference = '{}'",
                removed.reference
            ),
        ],
    )
    .await;
    // The removed item is gone from the API; the other's verification finds the hole.
    let v = verify(&mut responder, &kept.id).await;
    assert!(!v.verified, "{v:?}");
    let p = v.first_problem.unwrap();
    assert_eq!((p.sequence, p.log_index), (0, 1), "{p:?}");
    assert!(p.description.contains("deleted"), "{p:?}");
}

async fn a_record_changed_behind_the_service_is_caught_by_its_chain(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();
    let mut officer = svc.officer();
    let item = register(&mut responder, "INC-2026-000001").await;
    crate::common::upload(&mut responder, &item.id, b"the content", "", 1024)
        .await
        .unwrap();
    let held = officer
        .place_legal_hold(pb::PlaceLegalHoldRequest {
            item_id: item.id.clone(),
            revision: 2,
            reason: "matter 7".into(),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    // The hold taken off by hand, to let the item be disposed of.
    bypassing(&svc.db, backend, &["UPDATE evidence_items SET hold = NULL"]).await;
    let v = verify(&mut responder, &item.id).await;
    let p = v.first_problem.unwrap();
    assert_eq!(p.sequence, 3, "the hold's entry: {p:?}");
    assert!(p.description.contains("hold"), "{p:?}");
    // The content pointed at other bytes: the download refuses, naming the chain.
    let other = crate::common::sha256(b"other bytes");
    bypassing(&svc.db, backend, &[&format!("UPDATE evidence_items SET content_sha256 = '{other}', hold = '{{\"reason\":\"matter 7\",\"placed_by\":\"olivia\",\"placed_at\":\"2026-12-06T10:00:00Z\"}}'")]).await;
    let (status, received) = crate::common::download(&mut responder, &item.id)
        .await
        .unwrap_err();
    assert_eq!(crate::common::reason(&status), "CHAIN_BROKEN", "{status:?}");
    assert!(received.is_empty());
    let report = responder
        .get_custody_report(pb::GetCustodyReportRequest {
            scope: Some(pb::get_custody_report_request::Scope::ItemId(
                item.id.clone(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(crate::common::reason(&report), "CHAIN_BROKEN");
    let _ = held;
}

async fn a_forged_checkpoint_or_missing_content_is_caught(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    let content = b"disk image".to_vec();
    crate::common::upload(&mut responder, &item.id, &content, "", 1024)
        .await
        .unwrap();
    svc.sign().await;
    // A checkpoint rewritten under another key is not this service's.
    bypassing(
        &svc.db,
        backend,
        &["UPDATE checkpoints SET key_id = 'ffffffffffffffff'"],
    )
    .await;
    let p = verify(&mut responder, &item.id)
        .await
        .first_problem
        .unwrap();
    assert!(p.description.contains("not this service's key"), "{p:?}");
    bypassing(&svc.db, backend, &["DELETE FROM checkpoints"]).await;
    // The content removed from the store: DATA_LOSS, recorded, not a retry.
    let digest = crate::common::sha256(&content);
    std::fs::remove_file(
        svc.dir
            .path()
            .join("evidence/objects/sha256")
            .join(&digest[..2])
            .join(&digest),
    )
    .unwrap();
    let (status, _) = crate::common::download(&mut responder, &item.id)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DataLoss, "{status:?}");
    let v = verify(&mut responder, &item.id).await;
    assert!(!v.verified && !v.content_verified);
    assert!(v.first_problem.unwrap().description.contains("missing"));
}

on_both_backends!(
    a_record_changed_behind_the_service_is_caught_by_its_chain,
    a_forged_checkpoint_or_missing_content_is_caught,
    the_database_refuses_to_change_or_remove_custody_records,
    an_edited_entry_is_named,
    a_rehashed_chain_is_caught_by_the_checkpoint,
    removed_newest_entries_are_caught,
    removed_newest_entries_with_the_item_adjusted_are_caught_by_the_checkpoint,
    a_removed_item_is_caught,
);
