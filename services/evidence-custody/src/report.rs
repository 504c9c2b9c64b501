//! Custody reports: the whole chain of an item or of an incident's items as a signed
//! document, and its offline verification (the signature, every item's chain, and the
//! checkpoint it carries), which needs nothing but the document and the public key.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    chain::{StoredEntry, parse_hash, verify_inclusion, verify_item_chain},
    signing,
};

/// The document's format.
pub const REPORT_FORMAT: &str = "custos.custody-report.v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub generated_at: String,
    pub generated_by: String,
    /// What was asked for: an item's or an incident's reference.
    pub scope: String,
    pub items: Vec<ReportItem>,
    pub checkpoint: Option<ReportCheckpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportItem {
    pub item_id: Uuid,
    pub reference: String,
    pub incident_id: Uuid,
    pub incident_reference: String,
    pub kind: String,
    pub description: String,
    pub state: String,
    pub custodian: String,
    pub storage_location: String,
    pub content_sha256: Option<String>,
    pub content_size_bytes: Option<i64>,
    pub legal_hold: Option<String>,
    pub entry_count: i32,
    pub head_hash: String,
    pub entries: Vec<StoredEntry>,
    /// For each entry, its RFC 6962 inclusion proof against the checkpoint's root
    /// (hexadecimal sibling hashes); empty for an entry newer than the checkpoint.
    pub inclusion_proofs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportCheckpoint {
    pub tree_size: i64,
    pub root_hash: String,
    pub key_id: String,
    /// The signed note, and its signature (lowercase hexadecimal).
    pub note: String,
    pub signature: String,
}

/// What an offline verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub scope: String,
    pub generated_at: String,
    pub items: usize,
    pub entries: usize,
    pub checkpoint_size: Option<i64>,
}

/// Verifies a report offline: its signature with `public_key` (SPKI PEM or the raw 32
/// bytes), every item's chain (each entry signed by the same key), every inclusion proof,
/// and the checkpoint's own signature.
pub fn verify(document: &[u8], signature: &[u8], public_key: &[u8]) -> Result<Verified, String> {
    let key = signing::public_key(public_key)?;
    signing::verify(&key, document, signature)
        .map_err(|e| format!("the report's signature: {e}"))?;
    let report: Report = serde_json::from_slice(document)
        .map_err(|e| format!("the report is not a custody report: {e}"))?;
    if report.format != REPORT_FORMAT {
        return Err(format!(
            "the report's format is {}, not {REPORT_FORMAT}",
            report.format
        ));
    }
    // The checkpoint first: its signature, and the size and root its note states.
    let checkpoint = match &report.checkpoint {
        None => None,
        Some(cp) => {
            let sig = data_encoding::HEXLOWER
                .decode(cp.signature.as_bytes())
                .map_err(|_| "the checkpoint's signature is not hexadecimal".to_owned())?;
            if cp.key_id != signing::key_id(&key) {
                return Err(format!(
                    "the checkpoint names key {}, not the key given",
                    cp.key_id
                ));
            }
            signing::verify(&key, cp.note.as_bytes(), &sig)
                .map_err(|e| format!("the checkpoint's signature: {e}"))?;
            let size_line = format!("\nsize {}\nroot {}\n", cp.tree_size, cp.root_hash);
            if !cp.note.contains(&size_line) {
                return Err("the checkpoint's note does not state its size and root".into());
            }
            let root = parse_hash(&cp.root_hash).ok_or("the checkpoint's root is not a hash")?;
            Some((
                root,
                u64::try_from(cp.tree_size).map_err(|_| "the checkpoint's size is negative")?,
            ))
        }
    };
    let mut entries = 0;
    for item in &report.items {
        if let Some(p) = verify_item_chain(
            item.item_id,
            &item.entries,
            item.entry_count,
            &item.head_hash,
            &key,
        ) {
            return Err(format!("{}: {}", item.reference, p.description));
        }
        if item.inclusion_proofs.len() != item.entries.len() {
            return Err(format!("{}: an inclusion proof is missing", item.reference));
        }
        // Every entry the checkpoint covers is proved to be in the signed log.
        for (e, proof) in item.entries.iter().zip(&item.inclusion_proofs) {
            let index = u64::try_from(e.log_index)
                .map_err(|_| format!("{}: a negative log position", item.reference))?;
            match checkpoint {
                Some((root, size)) if index < size => {
                    let proof = data_encoding::HEXLOWER
                        .decode(proof.as_bytes())
                        .map_err(|_| {
                            format!(
                                "{}: entry {}'s inclusion proof is not hexadecimal",
                                item.reference, e.sequence
                            )
                        })?;
                    let leaf = parse_hash(&e.entry_hash).ok_or_else(|| {
                        format!("{}: entry {} has no hash", item.reference, e.sequence)
                    })?;
                    if !verify_inclusion(&root, size, &leaf, index, &proof) {
                        return Err(format!(
                            "{}: entry {} is not in the signed custody log at position {index}",
                            item.reference, e.sequence
                        ));
                    }
                }
                _ => {}
            }
        }
        entries += item.entries.len();
    }
    Ok(Verified {
        scope: report.scope,
        generated_at: report.generated_at,
        items: report.items.len(),
        entries,
        checkpoint_size: report.checkpoint.map(|c| c.tree_size),
    })
}
