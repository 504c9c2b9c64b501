//! Checkpoints of the custody log: the log checked against every signed checkpoint (the
//! leaves each one covers are all there, in order, and give its root; its signature is
//! the service's), and the task that signs a new one when the log has grown, but never
//! over a log that no longer matches what was signed before.

use std::{sync::Arc, time::Duration};

use custos_kit::storage::{AsConn, Db, DbTime, StorageError};
use tokio_util::sync::CancellationToken;

use crate::{
    chain::{LogTree, Problem, hex, parse_hash},
    content::ContentStore,
    signing::{self, Signer},
    store::{self, CheckpointRow},
};

/// Walks the log's leaves (`(log_index, entry_hash)` in order) into a tree, checking
/// them against each checkpoint as the tree reaches its size; returns the tree (of the
/// leaves walked) and the first problem.
pub fn walk(
    leaves: &[(i64, String)],
    checkpoints: &[CheckpointRow],
    signer: &Signer,
) -> (LogTree, Option<Problem>) {
    let mut tree = LogTree::new();
    let mut checks = checkpoints.iter().peekable();
    let mut previous_size = 0i64;
    let problem = |log_index: i64, description: String| Problem {
        sequence: 0,
        log_index,
        description,
    };
    // A checkpoint of size 0 covers nothing.
    while checks.peek().is_some_and(|c| c.tree_size <= 0) {
        checks.next();
    }
    for (expected, (index, hash)) in (0i64..).zip(leaves) {
        if *index != expected {
            return (
                tree,
                Some(problem(
                    expected,
                    format!(
                        "log positions {expected} to {} are missing: entries were deleted from the custody log",
                        index - 1
                    ),
                )),
            );
        }
        let Some(leaf) = parse_hash(hash) else {
            return (
                tree,
                Some(problem(
                    expected,
                    format!("the entry at log position {expected} has no readable hash"),
                )),
            );
        };
        tree.push(leaf);
        let size = expected + 1;
        if let Some(cp) = checks.peek()
            && cp.tree_size == size
        {
            if let Some(p) = check_one(cp, &tree, previous_size, signer) {
                return (tree, Some(p));
            }
            previous_size = size;
            checks.next();
        }
    }
    if let Some(cp) = checks.next() {
        let have = i64::try_from(tree.len()).unwrap_or(i64::MAX);
        return (
            tree,
            Some(problem(
                have,
                format!(
                    "log positions {have} to {} are missing: the checkpoint signed at {} covers {} entries and the log has only {have}",
                    cp.tree_size - 1,
                    signing_time(cp),
                    cp.tree_size
                ),
            )),
        );
    }
    (tree, None)
}

fn signing_time(cp: &CheckpointRow) -> String {
    crate::api::rfc3339(cp.signed_at)
}

/// Checks one checkpoint against the tree that has just reached its size: its
/// signature (when signed with the service's present key) and its root.
fn check_one(
    cp: &CheckpointRow,
    tree: &LogTree,
    previous_size: i64,
    signer: &Signer,
) -> Option<Problem> {
    let at = signing_time(cp);
    // (A key rotated out would be listed here as well; there is one key so far.)
    if cp.key_id != signer.key_id() {
        return Some(Problem {
            sequence: 0,
            log_index: -1,
            description: format!(
                "the checkpoint over {} entries (signed at {at}) names key {}, which is not this service's key {}: it was forged or changed",
                cp.tree_size,
                cp.key_id,
                signer.key_id()
            ),
        });
    }
    let genuine = signing::verify(&signer.public_key(), cp.note.as_bytes(), &cp.signature).is_ok()
        && cp.note
            == signing::checkpoint_note(
                &cp.key_id,
                cp.tree_size,
                &parse_hash(&cp.root_hash).unwrap_or_default(),
                &at,
            );
    if !genuine {
        return Some(Problem {
            sequence: 0,
            log_index: -1,
            description: format!(
                "the checkpoint over {} entries (signed at {at}) does not carry a valid signature: it was changed",
                cp.tree_size
            ),
        });
    }
    if cp.root_hash != hex(&tree.root()) {
        return Some(Problem {
            sequence: 0,
            log_index: previous_size,
            description: format!(
                "the custody log no longer matches the checkpoint signed at {at} over {} entries: an entry between log positions {previous_size} and {} was changed or replaced",
                cp.tree_size,
                cp.tree_size - 1
            ),
        });
    }
    None
}

/// The log as checked: its recorded size when read, the latest checkpoint, the first
/// problem, and the tree of its leaves.
#[derive(Debug)]
pub struct LogCheck {
    pub size: i64,
    pub latest: Option<CheckpointRow>,
    pub problem: Option<Problem>,
    pub tree: LogTree,
}

/// The log checked against every checkpoint, and for holes up to its recorded size
/// (read once: entries committed meanwhile are left for the next check).
pub async fn check_log(mut conn: impl AsConn, signer: &Signer) -> Result<LogCheck, StorageError> {
    // The checkpoints first: a size read after them covers every one of them (each was
    // signed over a committed size).
    let checkpoints = store::checkpoints(&mut conn).await?;
    let size = store::log_size(&mut conn).await?;
    let latest = checkpoints.last().cloned();
    let upto = size.max(latest.as_ref().map_or(0, |c| c.tree_size));
    let leaves = store::log_leaves(&mut conn, upto).await?;
    let (tree, mut problem) = walk(&leaves, &checkpoints, signer);
    let have = i64::try_from(tree.len()).unwrap_or(i64::MAX);
    // Every entry no checkpoint covers yet carries the service's signature over its
    // position and hash: one written by anyone else (the database role itself, or a
    // signature copied from another position) is named, and never signed into the log.
    if problem.is_none() {
        let from = latest.as_ref().map_or(0, |c| c.tree_size);
        let key = signer.public_key();
        for (index, hash, signature) in store::signed_leaves(&mut conn, from, size).await? {
            let signed = parse_hash(&hash)
                .is_some_and(|h| crate::chain::entry_signed(&key, index, &h, &signature));
            if !signed {
                problem = Some(Problem {
                    sequence: 0,
                    log_index: index,
                    description: format!(
                        "the entry at log position {index} does not carry the service's signature: the service did not write it there"
                    ),
                });
                break;
            }
        }
    }
    if problem.is_none() && have < size {
        problem = Some(Problem {
            sequence: 0,
            log_index: have,
            description: format!(
                "log positions {have} to {} are missing: entries were deleted from the custody log",
                size - 1
            ),
        });
    }
    Ok(LogCheck {
        size,
        latest,
        problem,
        tree,
    })
}

/// Why no checkpoint was signed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the custody log does not match its signed checkpoints ({}): no checkpoint is signed over it", .0.description)]
    Tampered(Problem),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Signs a checkpoint over the log as committed now, if it grew since the latest one and
/// still matches every earlier one. Returns the new checkpoint, if any.
pub async fn sign(db: &Db, signer: &Signer) -> Result<Option<CheckpointRow>, CheckpointError> {
    let mut conn = db.read().await?;
    // One reading of the size: entries committed after it wait for the next checkpoint
    // (on PostgreSQL every position below a committed size is committed).
    let LogCheck {
        size,
        latest,
        problem,
        tree,
    } = check_log(&mut conn, signer).await?;
    drop(conn);
    if let Some(p) = problem {
        return Err(CheckpointError::Tampered(p));
    }
    if size == 0 || latest.as_ref().is_some_and(|c| c.tree_size >= size) {
        return Ok(None);
    }
    // The log as committed when its size was read: its leaves, with no hole (later
    // entries wait for the next checkpoint).
    let covered = tree;
    if i64::try_from(covered.len()).ok() != Some(size) {
        let have = i64::try_from(covered.len()).unwrap_or(i64::MAX);
        return Err(CheckpointError::Tampered(Problem {
            sequence: 0,
            log_index: have,
            description: format!("log positions {have} to {} are missing", size - 1),
        }));
    }
    let root = covered.root();
    let signed_at = DbTime::now();
    let note = signing::checkpoint_note(
        signer.key_id(),
        size,
        &root,
        &crate::api::rfc3339(signed_at),
    );
    let row = CheckpointRow {
        tree_size: size,
        root_hash: hex(&root),
        signed_at,
        key_id: signer.key_id().to_owned(),
        signature: signer.sign(note.as_bytes()),
        note,
    };
    let mut tx = db.begin().await?;
    let inserted = store::insert_checkpoint(&mut tx, &row).await?;
    if inserted {
        // Published on the feed as well, so that copies outside this database anchor
        // the log: whoever holds them can tell a rewritten history from the real one.
        tx.append_event(&custos_kit::outbox::NewEvent::new(
            "custody-log",
            "",
            signed_at.get(),
            &custos_proto::custody::v1::CustodyCheckpointSigned {
                checkpoint: Some(crate::api::checkpoint_to_wire(&row)),
            },
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(inserted.then_some(row))
}

/// Signs checkpoints every `every` until stopped, and removes unary uploads left
/// unfinished for longer than `upload_expiry`.
pub async fn run(
    db: Db,
    signer: Arc<Signer>,
    content: ContentStore,
    every: Duration,
    upload_expiry: time::Duration,
    stopping: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sign(&db, &signer).await {
            Ok(Some(c)) => {
                tracing::debug!(tree_size = c.tree_size, root = %c.root_hash, "custody checkpoint signed")
            }
            Ok(None) => {}
            Err(CheckpointError::Tampered(p)) => tracing::error!(
                log_index = p.log_index,
                problem = %p.description,
                "the custody log does not match its signed checkpoints: it was changed outside the service; no checkpoint is signed until this is investigated (VerifyChain names the entry)"
            ),
            Err(CheckpointError::Storage(e)) => {
                tracing::warn!(error = %e, "no custody checkpoint this time: the database failed")
            }
        }
        if let Err(e) = expire_uploads(&db, &content, upload_expiry).await {
            tracing::warn!(error = %e, "unfinished uploads were not removed this time");
        }
    }
}

/// Removes uploads untouched for longer than `expiry` (abandoned ones, and the chunks of
/// finalised ones), each while holding it, so that no chunk is written meanwhile.
pub async fn expire_uploads(
    db: &Db,
    content: &ContentStore,
    expiry: time::Duration,
) -> Result<usize, String> {
    let before = DbTime::new(DbTime::now().get() - expiry);
    let mut conn = db.read().await.map_err(|e| e.to_string())?;
    let expired = store::expired_uploads(&mut conn, before, 100)
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);
    let mut removed = 0;
    for u in &expired {
        // One that cannot be removed now is tried again next time; the others go on.
        match expire_one(db, content, u.id, before).await {
            Ok(true) => {
                removed += 1;
                if !u.finalized {
                    tracing::info!(upload_id = %u.id, item_id = %u.item_id, "an unfinished upload expired and was removed");
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(upload_id = %u.id, error = %e, "an expired upload could not be removed; tried again next time")
            }
        }
    }
    Ok(removed)
}

/// Removes one upload if it is still untouched since `before`, holding it meanwhile.
async fn expire_one(
    db: &Db,
    content: &ContentStore,
    id: uuid::Uuid,
    before: DbTime,
) -> Result<bool, String> {
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    match store::hold_upload(&mut tx, id)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(held) if held.updated_at < before => {}
        // Written to since it was listed: not expired after all.
        _ => return Ok(false),
    }
    content.delete_parts(id).await.map_err(|e| e.to_string())?;
    store::delete_upload(&mut tx, id)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(true)
}
