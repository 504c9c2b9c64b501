//! The chain of custody as data: the canonical body of an entry, its hash, the checks
//! that find the first entry of an item that does not verify, and the Merkle tree
//! (RFC 6962) over the whole custody log that checkpoints sign.
//!
//! An entry's hash is SHA-256 over the previous entry's hash (32 zero bytes for an
//! item's first) and the entry's body: UTF-8 JSON with its fields in a fixed order, kept
//! byte for byte as it was hashed. The body names its item, its sequence in the item's
//! chain and its position in the log, so an entry cannot be moved unnoticed either.

use std::collections::BTreeMap;

use ct_merkle::{InclusionProof, RootHash, mem_backed_tree::MemoryBackedTree};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The format of a body, its first field.
pub const ENTRY_FORMAT: &str = "custos.custody-entry.v1";

/// What precedes an item's first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The canonical body of an entry (serialised in this field order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBody {
    pub format: String,
    pub item_id: Uuid,
    pub item_reference: String,
    pub sequence: i32,
    pub log_index: i64,
    /// The action's wire name, e.g. `CUSTODY_ACTION_TRANSFERRED`.
    pub action: String,
    pub actor: String,
    /// RFC 3339, UTC, microseconds.
    pub at: String,
    pub reason: String,
    /// Sorted by key (a `BTreeMap` serialises in order).
    pub details: BTreeMap<String, String>,
}

impl EntryBody {
    /// The bytes that are hashed and kept.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an entry body serialises")
    }
}

/// What the service signs for an entry: its log position (8 bytes, big-endian) and its
/// hash, so that a signature copied to another position does not verify there.
pub fn signed_message(log_index: i64, hash: &[u8; 32]) -> [u8; 40] {
    let mut m = [0u8; 40];
    m[..8].copy_from_slice(&log_index.to_be_bytes());
    m[8..].copy_from_slice(hash);
    m
}

/// Whether `signature` (hexadecimal) is `key`'s signature over the entry at `log_index`
/// with `hash`.
pub fn entry_signed(
    key: &ed25519_dalek::VerifyingKey,
    log_index: i64,
    hash: &[u8; 32],
    signature: &str,
) -> bool {
    data_encoding::HEXLOWER
        .decode(signature.as_bytes())
        .ok()
        .is_some_and(|sig| {
            crate::signing::verify(key, &signed_message(log_index, hash), &sig).is_ok()
        })
}

/// SHA-256 over the previous hash and the body.
pub fn entry_hash(previous: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(body);
    h.finalize().into()
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// A 32-byte hash from lowercase hexadecimal.
pub fn parse_hash(s: &str) -> Option<[u8; 32]> {
    data_encoding::HEXLOWER
        .decode(s.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

/// An entry as stored (or as a report carries it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub log_index: i64,
    pub sequence: i32,
    pub previous_hash: String,
    pub entry_hash: String,
    pub body: String,
    /// The service's Ed25519 signature over the entry hash's 32 bytes (hexadecimal).
    pub signature: String,
}

/// The first thing about an item's chain that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The item's entry at fault; 0 when none is (the log, the content).
    pub sequence: i32,
    /// The log position at fault; -1 when none is.
    pub log_index: i64,
    pub description: String,
}

/// Recomputes an item's chain from its entries (in sequence order) and checks it
/// against the count and head hash recorded on the item; returns the first problem.
pub fn verify_item_chain(
    item_id: Uuid,
    entries: &[StoredEntry],
    recorded_count: i32,
    recorded_head: &str,
    key: &ed25519_dalek::VerifyingKey,
) -> Option<Problem> {
    let mut previous = GENESIS;
    for (i, e) in entries.iter().enumerate() {
        let expected = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let at = |description: String| Problem {
            sequence: expected,
            log_index: e.log_index,
            description,
        };
        if e.sequence != expected {
            return Some(Problem {
                sequence: expected,
                log_index: -1,
                description: format!(
                    "entry {expected} is missing: the chain goes from entry {} to entry {}",
                    expected - 1,
                    e.sequence
                ),
            });
        }
        if parse_hash(&e.previous_hash) != Some(previous) {
            return Some(at(format!(
                "entry {expected} does not follow entry {}: its previous hash is not that entry's hash",
                expected - 1
            )));
        }
        let body: EntryBody = match serde_json::from_str(&e.body) {
            Ok(b) => b,
            Err(err) => {
                return Some(at(format!(
                    "entry {expected}'s body is not readable: {err}"
                )));
            }
        };
        if body.format != ENTRY_FORMAT
            || body.item_id != item_id
            || body.sequence != e.sequence
            || body.log_index != e.log_index
        {
            return Some(at(format!(
                "entry {expected} was moved: its body names item {} entry {} at log position {}",
                body.item_id, body.sequence, body.log_index
            )));
        }
        let computed = entry_hash(&previous, e.body.as_bytes());
        if parse_hash(&e.entry_hash) != Some(computed) {
            return Some(at(format!(
                "entry {expected} was changed: its hash does not match its content"
            )));
        }
        if !entry_signed(key, e.log_index, &computed, &e.signature) {
            return Some(at(format!(
                "entry {expected} does not carry the service's signature: the service did not write it"
            )));
        }
        previous = computed;
    }
    let count = i32::try_from(entries.len()).unwrap_or(i32::MAX);
    if count < recorded_count {
        return Some(Problem {
            sequence: count + 1,
            log_index: -1,
            description: format!(
                "entries {} to {recorded_count} are missing: the item records {recorded_count} entries and only {count} remain",
                count + 1
            ),
        });
    }
    if count > recorded_count || hex(&previous) != recorded_head {
        return Some(Problem {
            sequence: count,
            log_index: entries.last().map_or(-1, |e| e.log_index),
            description: format!(
                "the chain's last entry ({count}) is not the one the item records ({recorded_count})"
            ),
        });
    }
    None
}

/// The Merkle tree of the custody log: its leaves are the entries' hashes in log order
/// (RFC 6962: a leaf hashes as SHA-256(0x00 ‖ entry hash), a node as
/// SHA-256(0x01 ‖ left ‖ right)).
#[derive(Debug, Default)]
pub struct LogTree {
    tree: MemoryBackedTree<Sha256, [u8; 32]>,
}

impl LogTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, leaf: [u8; 32]) {
        self.tree.push(leaf);
    }

    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The root hash of the tree as it is now.
    pub fn root(&self) -> [u8; 32] {
        (*self.tree.root().as_bytes()).into()
    }

    /// The RFC 6962 inclusion proof of the leaf at `index` (the sibling hashes, in order,
    /// concatenated).
    pub fn prove(&self, index: u64) -> Vec<u8> {
        self.tree
            .prove_inclusion(usize::try_from(index).expect("a leaf index fits"))
            .as_bytes()
            .to_vec()
    }
}

/// Whether `proof` shows the leaf `leaf` at `index` in the tree of `size` leaves whose
/// root is `root`.
pub fn verify_inclusion(
    root: &[u8; 32],
    size: u64,
    leaf: &[u8; 32],
    index: u64,
    proof: &[u8],
) -> bool {
    let root = RootHash::<Sha256>::new((*root).into(), size);
    let Ok(proof) = InclusionProof::<Sha256>::try_from_bytes(proof.to_vec()) else {
        return false;
    };
    root.verify_inclusion(leaf, index, &proof).is_ok()
}

/// What an item's chain says the item is now, with the entry that said it last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    pub incident: (String, i32),
    /// The content's digest, file name and who added it.
    pub content: Option<(String, String, String, i32)>,
    pub state: (crate::evidence::ItemState, i32),
    /// The hold's reason while on hold.
    pub hold: (Option<String>, i32),
    pub custodian: (String, i32),
    pub storage_location: (String, i32),
    /// When the content was added.
    pub content_at: Option<time::OffsetDateTime>,
    /// Who placed the hold, and when, while on hold.
    pub hold_by: Option<(String, time::OffsetDateTime)>,
}

/// An RFC 3339 time as entries and records write them.
pub fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Replays an item's chain (whose entries verified) into what it says of the item.
pub fn replay(entries: &[StoredEntry]) -> Replayed {
    use crate::evidence::{Action, ItemState};
    let mut r = Replayed::default();
    for e in entries {
        let Ok(body) = serde_json::from_str::<EntryBody>(&e.body) else {
            continue;
        };
        let Some(action) = Action::ALL
            .iter()
            .copied()
            .find(|a| a.name() == body.action)
        else {
            continue;
        };
        let at = e.sequence;
        let detail = |k: &str| body.details.get(k).cloned().unwrap_or_default();
        match action {
            Action::Registered => {
                r.incident = (detail("incident"), at);
                r.custodian = (detail("custodian"), at);
                r.storage_location = (detail("storage_location"), at);
                r.state = (ItemState::InCustody, at);
            }
            Action::ContentAdded => {
                r.content = Some((
                    detail("sha256"),
                    detail("file_name"),
                    body.actor.clone(),
                    at,
                ));
                r.content_at = parse_time(&body.at);
            }
            Action::Transferred => {
                r.custodian = (detail("to"), at);
                r.storage_location = (detail("location"), at);
            }
            Action::Sealed => r.state = (ItemState::Sealed, at),
            Action::Unsealed => r.state = (ItemState::InCustody, at),
            Action::Released => r.state = (ItemState::Released, at),
            Action::Disposed => r.state = (ItemState::Disposed, at),
            Action::HoldPlaced => {
                r.hold = (Some(body.reason.clone()), at);
                r.hold_by = parse_time(&body.at).map(|t| (body.actor.clone(), t));
            }
            Action::HoldLifted => {
                r.hold = (None, at);
                r.hold_by = None;
            }
            Action::Accessed
            | Action::Downloaded
            | Action::Examined
            | Action::IntegrityFailed
            | Action::Derived => {}
        }
    }
    r
}

/// What the item's row says, to compare with its chain.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub incident_reference: &'a str,
    /// Digest, file name, who added it.
    pub content: Option<(&'a str, &'a str, &'a str)>,
    pub state: crate::evidence::ItemState,
    pub hold_reason: Option<&'a str>,
    pub custodian: &'a str,
    pub storage_location: &'a str,
    pub content_added_at: Option<time::OffsetDateTime>,
    /// Who placed the hold, and when.
    pub hold_by: Option<(&'a str, time::OffsetDateTime)>,
}

/// The first way the item's record differs from what its chain says.
pub fn compare_record(r: &Replayed, record: &Record<'_>) -> Option<Problem> {
    let Record {
        incident_reference,
        content,
        state,
        hold_reason,
        custodian,
        storage_location,
        content_added_at,
        hold_by,
    } = *record;
    let differs = |what: &str, record: &str, chain: &str, sequence: i32| {
        Some(Problem {
            sequence,
            log_index: -1,
            description: format!(
                "the item's record was changed outside the service: its {what} is `{record}`, but its chain (entry {sequence}) says `{chain}`"
            ),
        })
    };
    if r.incident.0 != incident_reference {
        return differs("incident", incident_reference, &r.incident.0, r.incident.1);
    }
    let chain_content = r
        .content
        .as_ref()
        .map(|c| (c.0.as_str(), c.1.as_str(), c.2.as_str()));
    if chain_content != content {
        let show = |c: Option<(&str, &str, &str)>| {
            c.map_or("none".to_owned(), |(sha, name, by)| {
                format!("{sha} ({name}, added by {by})")
            })
        };
        return differs(
            "content",
            &show(content),
            &show(chain_content),
            r.content.as_ref().map_or(1, |c| c.3),
        );
    }
    if r.state.0 != state {
        return differs("state", state.name(), r.state.0.name(), r.state.1);
    }
    if r.hold.0.as_deref() != hold_reason {
        let show = |h: Option<&str>| {
            h.map_or("not on legal hold".to_owned(), |reason| {
                format!("on legal hold ({reason})")
            })
        };
        return differs(
            "hold",
            &show(hold_reason),
            &show(r.hold.0.as_deref()),
            r.hold.1,
        );
    }
    if r.content_at != content_added_at {
        let show = |t: Option<time::OffsetDateTime>| t.map_or("none".to_owned(), |t| t.to_string());
        return differs(
            "content's time",
            &show(content_added_at),
            &show(r.content_at),
            r.content.as_ref().map_or(1, |c| c.3),
        );
    }
    let chain_hold_by = r.hold_by.as_ref().map(|(who, at)| (who.as_str(), *at));
    if chain_hold_by != hold_by {
        let show = |h: Option<(&str, time::OffsetDateTime)>| {
            h.map_or("none".to_owned(), |(who, at)| format!("{who} at {at}"))
        };
        return differs(
            "hold's placer",
            &show(hold_by),
            &show(chain_hold_by),
            r.hold.1,
        );
    }
    if r.custodian.0 != custodian {
        return differs("custodian", custodian, &r.custodian.0, r.custodian.1);
    }
    if r.storage_location.0 != storage_location {
        return differs(
            "storage location",
            storage_location,
            &r.storage_location.0,
            r.storage_location.1,
        );
    }
    None
}

/// The root of the tree over `leaves`.
pub fn log_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut t = LogTree::new();
    for l in leaves {
        t.push(*l);
    }
    t.root()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> crate::signing::Signer {
        crate::signing::Signer::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
    }

    fn chain(item: Uuid, n: i32) -> (Vec<StoredEntry>, String) {
        let mut previous = GENESIS;
        let mut out = Vec::new();
        for s in 1..=n {
            let body = EntryBody {
                format: ENTRY_FORMAT.into(),
                item_id: item,
                item_reference: "EVD-2026-000001".into(),
                sequence: s,
                log_index: i64::from(s) * 10,
                action: "CUSTODY_ACTION_ACCESSED".into(),
                actor: "alice".into(),
                at: "2026-12-06T10:00:00.000000Z".into(),
                reason: String::new(),
                details: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            }
            .to_bytes();
            let h = entry_hash(&previous, &body);
            out.push(StoredEntry {
                log_index: i64::from(s) * 10,
                sequence: s,
                previous_hash: hex(&previous),
                entry_hash: hex(&h),
                body: String::from_utf8(body).unwrap(),
                signature: hex(&key().sign(&signed_message(i64::from(s) * 10, &h))),
            });
            previous = h;
        }
        (out, hex(&previous))
    }

    #[test]
    fn a_whole_chain_verifies() {
        let item = Uuid::now_v7();
        let (entries, head) = chain(item, 4);
        assert_eq!(
            verify_item_chain(item, &entries, 4, &head, &key().public_key()),
            None
        );
        // Details serialise sorted, whatever order they were given in.
        assert!(entries[0].body.contains(r#""details":{"a":"1","b":"2"}"#));
    }

    #[test]
    fn the_first_bad_entry_is_named() {
        let item = Uuid::now_v7();
        let (entries, head) = chain(item, 5);

        let mut edited = entries.clone();
        edited[2].body = edited[2].body.replace("alice", "mallory");
        let p = verify_item_chain(item, &edited, 5, &head, &key().public_key()).unwrap();
        assert_eq!((p.sequence, p.log_index), (3, 30), "{p:?}");
        assert!(p.description.contains("changed"), "{p:?}");

        // Re-hashing the edited entry breaks the link to the next.
        let mut rehashed = edited.clone();
        let h = entry_hash(
            &parse_hash(&rehashed[2].previous_hash).unwrap(),
            rehashed[2].body.as_bytes(),
        );
        rehashed[2].entry_hash = hex(&h);
        // Without the service's key, the re-hashed entry carries no valid signature.
        let p = verify_item_chain(item, &rehashed, 5, &head, &key().public_key()).unwrap();
        assert_eq!(p.sequence, 3, "{p:?}");
        assert!(p.description.contains("signature"), "{p:?}");
        // With it, the next entry no longer follows.
        rehashed[2].signature = hex(&key().sign(&signed_message(rehashed[2].log_index, &h)));
        let p = verify_item_chain(item, &rehashed, 5, &head, &key().public_key()).unwrap();
        assert_eq!(p.sequence, 4, "{p:?}");

        let mut gap = entries.clone();
        gap.remove(1);
        assert_eq!(
            verify_item_chain(item, &gap, 5, &head, &key().public_key())
                .unwrap()
                .sequence,
            2
        );

        let newest_gone = &entries[..3];
        let p = verify_item_chain(item, newest_gone, 5, &head, &key().public_key()).unwrap();
        assert_eq!(p.sequence, 4, "{p:?}");

        let other = Uuid::now_v7();
        assert_eq!(
            verify_item_chain(other, &entries, 5, &head, &key().public_key())
                .unwrap()
                .sequence,
            1
        );
    }

    #[test]
    fn the_log_root_is_rfc_6962() {
        // RFC 6962 over no leaves is SHA-256 of nothing; over one leaf, SHA-256(0x00 ‖ leaf).
        let leaf = [7u8; 32];
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(leaf);
        let one: [u8; 32] = h.finalize().into();
        assert_eq!(log_root(&[leaf]), one);
        let leaf2 = [9u8; 32];
        let mut h2 = Sha256::new();
        h2.update([0u8]);
        h2.update(leaf2);
        let two: [u8; 32] = h2.finalize().into();
        let mut n = Sha256::new();
        n.update([1u8]);
        n.update(one);
        n.update(two);
        let node: [u8; 32] = n.finalize().into();
        assert_eq!(log_root(&[leaf, leaf2]), node);
    }
}
