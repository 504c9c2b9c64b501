//! Content: the client-streaming upload, the unary chunked upload (for browsers), and
//! the verified download.

use std::pin::Pin;

use bytes::Bytes;
use custos_kit::{
    auth::{Principal, require_authenticated},
    error::{FieldViolation, Violations, text},
    storage::{DbTime, StorageError},
};
use custos_proto::custody::v1 as pb;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::{
    CustodyApi, ITEM_EXAMPLE, hold_visible, item_to_wire, parse_ref, record_read, visible_item,
};
use crate::{
    chain::{hex, parse_hash},
    content::Staging,
    error::CustodyError,
    evidence::{Action, ItemState},
    store::{self, ItemRow, NewEntry},
};

/// The stream DownloadContent returns.
pub type DownloadStream =
    Pin<Box<dyn Stream<Item = Result<pb::DownloadContentResponse, Status>> + Send>>;

/// The largest piece of content sent in one message.
const DOWNLOAD_CHUNK: usize = 1024 * 1024;

/// A validated `UploadStart`.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub(crate) item: super::ItemRef,
    pub(crate) expected: Option<[u8; 32]>,
    pub(crate) file_name: String,
    pub(crate) reason: String,
}

pub(crate) fn sha256_field(
    v: &mut Violations,
    field: &str,
    raw: &str,
    required: bool,
) -> Option<[u8; 32]> {
    let raw = raw.trim().to_ascii_lowercase();
    if raw.is_empty() {
        if required {
            v.add(
                field,
                "is required (the SHA-256 of the bytes, 64 hexadecimal digits)",
            );
        }
        return None;
    }
    let parsed = parse_hash(&raw);
    if parsed.is_none() {
        v.add(field, "must be a SHA-256 digest: 64 hexadecimal digits");
    }
    parsed
}

pub(crate) fn parse_start(v: &mut Violations, prefix: &str, s: &pb::UploadStart) -> Option<Start> {
    let item = parse_ref(v, &format!("{prefix}item_id"), &s.item_id, ITEM_EXAMPLE);
    let expected = sha256_field(
        v,
        &format!("{prefix}expected_sha256"),
        &s.expected_sha256,
        false,
    );
    let file_name = text(v, &format!("{prefix}file_name"), &s.file_name, 255, false);
    if file_name.contains(['/', '\\', '\n', '\r']) || file_name == "." || file_name == ".." {
        v.add(
            format!("{prefix}file_name"),
            "must be a file's name, not a path",
        );
    }
    let reason = text(v, &format!("{prefix}reason"), &s.reason, 2_000, false);
    Some(Start {
        item: item?,
        expected,
        file_name,
        reason,
    })
}

/// Whether content may be added to the item as it is now: Ok(true) when the same bytes
/// are its content already (a retry: nothing to add), Ok(false) when they may be added.
pub(crate) fn may_add(item: &ItemRow, sha256: Option<&[u8; 32]>) -> Result<bool, CustodyError> {
    if let Some(existing) = &item.content_sha256 {
        if sha256.is_some_and(|s| hex(s) == *existing) {
            return Ok(true);
        }
        return Err(CustodyError::ContentExists {
            sha256: existing.clone(),
        });
    }
    if item.state != ItemState::InCustody {
        return Err(CustodyError::IllegalTransition {
            action: "UploadContent",
            state: match item.state {
                ItemState::Sealed => "sealed",
                ItemState::Released => "released",
                ItemState::Disposed => "disposed of",
                ItemState::InCustody => "in custody",
            },
            allowed: super::verbs::allowed(item),
        });
    }
    Ok(false)
}

/// What an upload wrote.
pub(crate) struct Written {
    sha256: [u8; 32],
    size: i64,
    key: String,
}

impl CustodyApi {
    /// Makes the staged bytes durable under their digest if they match what the client
    /// expected, or drops them.
    pub(crate) async fn seal_staging(
        &self,
        staging: Staging,
        hasher: Sha256,
        size: i64,
        expected: Option<[u8; 32]>,
        field: &str,
    ) -> Result<Written, CustodyError> {
        let sha256: [u8; 32] = hasher.finalize().into();
        if let Some(expected) = expected
            && expected != sha256
        {
            staging.abort().await;
            return Err(CustodyError::DigestMismatch {
                expected: hex(&expected),
                actual: hex(&sha256),
                field: vec![FieldViolation {
                    field: field.to_owned(),
                    description: format!("the bytes received have SHA-256 {}", hex(&sha256)),
                }],
            });
        }
        let key = staging.finish(&sha256).await?;
        Ok(Written { sha256, size, key })
    }

    /// Records the written bytes as the item's content (or, for a retry whose bytes are
    /// its content already, changes nothing) and returns the item.
    pub(crate) async fn add_content(
        &self,
        caller: &Principal,
        item_id: Uuid,
        w: &Written,
        file_name: &str,
        reason: &str,
        finalize: Option<Uuid>,
    ) -> Result<pb::EvidenceItem, CustodyError> {
        let mut tx = self.db.begin().await?;
        let mut item = hold_visible(&mut tx, caller, item_id).await?;
        let incident = store::incident(&mut tx, item.incident_id)
            .await?
            .ok_or(CustodyError::ItemNotFound)?;
        if !may_add(&item, Some(&w.sha256))? {
            let now = DbTime::now();
            item.content_sha256 = Some(hex(&w.sha256));
            item.content_size = Some(w.size);
            item.content_key = Some(w.key.clone());
            item.content_file_name = Some(file_name.to_owned());
            item.content_added_at = Some(now);
            item.content_added_by = Some(caller.subject.clone());
            item.revision += 1;
            let entry = NewEntry::new(Action::ContentAdded, &caller.subject, reason, now)
                .with("sha256", hex(&w.sha256))
                .with("size_bytes", w.size.to_string())
                .with("file_name", file_name);
            store::append(&mut tx, &mut item, entry, &self.signer).await?;
            store::save_item(&mut tx, &item).await?;
            tracing::info!(item_id = %item.id, reference = %item.reference, sha256 = %hex(&w.sha256), size = w.size, by = %caller.subject, "content added");
        }
        if let Some(upload) = finalize {
            store::set_finalized(&mut tx, upload).await?;
        }
        tx.commit().await?;
        Ok(item_to_wire(&item, &incident))
    }

    pub(crate) async fn upload_content(
        &self,
        r: Request<Streaming<pb::UploadContentRequest>>,
    ) -> Result<Response<pb::UploadContentResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let mut stream = r.into_inner();
        let idle = |secs| CustodyError::UploadIdle { secs };
        let first = tokio::time::timeout(self.upload_idle, stream.message())
            .await
            .map_err(|_| idle(self.upload_idle.as_secs()))??;
        let start = match first.and_then(|m| m.part) {
            Some(pb::upload_content_request::Part::Start(s)) => s,
            _ => {
                return Err(CustodyError::Invalid(vec![FieldViolation {
                    field: "start".into(),
                    description: "the first message must be `start`, naming the item".into(),
                }])
                .into());
            }
        };
        let mut v = Violations::new();
        let start = parse_start(&mut v, "start.", &start);
        v.finish().map_err(CustodyError::Invalid)?;
        let start = start.expect("validated");
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let (item, _) = visible_item(&mut conn, &caller, &start.item).await?;
        drop(conn);
        // Refused before any byte is taken where the request says enough (and checked
        // again when recorded): other content, or an item that takes none. Without an
        // expected digest, bytes for an item that has content are hashed first: the same
        // bytes again are a retry.
        if item.content_sha256.is_none() || start.expected.is_some() {
            may_add(&item, start.expected.as_ref())?;
        }
        let mut staging = self.store.stage().await.map_err(CustodyError::from)?;
        let mut hasher = Sha256::new();
        let mut size: i64 = 0;
        loop {
            let next = match tokio::time::timeout(self.upload_idle, stream.message()).await {
                Ok(next) => next,
                Err(_) => {
                    staging.abort().await;
                    tracing::info!(item_id = %item.id, received = size, "upload idle too long: abandoned, nothing kept");
                    return Err(idle(self.upload_idle.as_secs()).into());
                }
            };
            let message = match next {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(status) => {
                    staging.abort().await;
                    tracing::info!(item_id = %item.id, received = size, "upload interrupted: nothing kept");
                    return Err(status);
                }
            };
            match message.part {
                Some(pb::upload_content_request::Part::Chunk(bytes)) => {
                    hasher.update(&bytes);
                    size += i64::try_from(bytes.len()).unwrap_or(i64::MAX);
                    if let Err(e) = staging.write(Bytes::from(bytes)).await {
                        staging.abort().await;
                        return Err(CustodyError::from(e).into());
                    }
                }
                _ => {
                    staging.abort().await;
                    return Err(CustodyError::Invalid(vec![FieldViolation {
                        field: "chunk".into(),
                        description: "after `start`, every message must be a `chunk`".into(),
                    }])
                    .into());
                }
            }
        }
        let expected = match (&item.content_sha256, start.expected) {
            // Only the content it has may come again; anything else keeps nothing.
            (Some(existing), None) => Some(parse_hash(existing).ok_or_else(|| {
                CustodyError::Storage(StorageError::Corrupt(format!(
                    "item {}'s digest is unreadable",
                    item.id
                )))
            })?),
            (_, expected) => expected,
        };
        let written = match self
            .seal_staging(staging, hasher, size, expected, "start.expected_sha256")
            .await
        {
            Err(CustodyError::DigestMismatch { .. }) if start.expected.is_none() => {
                return Err(CustodyError::ContentExists {
                    sha256: item.content_sha256.clone().unwrap_or_default(),
                }
                .into());
            }
            other => other?,
        };
        let item = self
            .add_content(
                &caller,
                item.id,
                &written,
                &start.file_name,
                &start.reason,
                None,
            )
            .await?;
        Ok(Response::new(pb::UploadContentResponse {
            item: Some(item),
        }))
    }

    pub(crate) async fn download_content(
        &self,
        r: Request<pb::DownloadContentRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let item = parse_ref(&mut v, "item_id", &req.item_id, ITEM_EXAMPLE);
        let reason = text(&mut v, "reason", &req.reason, 2_000, true);
        v.finish().map_err(CustodyError::Invalid)?;
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let (item, incident) = visible_item(&mut conn, &caller, &item.expect("validated")).await?;
        let (Some(sha256), Some(key)) = (item.content_sha256.clone(), item.content_key.clone())
        else {
            return Err(CustodyError::NoContent.into());
        };
        // The digest to check against is the one the chain recorded, not merely the row's.
        let (_, problem) = super::check_item(&mut conn, &item, &incident, &self.signer).await?;
        drop(conn);
        if let Some(p) = problem {
            tracing::error!(item_id = %item.id, reference = %item.reference, problem = %p.description, "download refused: the item's chain does not verify");
            return Err(CustodyError::ChainBroken {
                reference: item.reference.clone(),
                description: p.description,
            }
            .into());
        }
        let mut reader = match self.store.read(&key).await {
            Ok(r) => r,
            Err(e) if e.missing => {
                tracing::error!(item_id = %item.id, reference = %item.reference, sha256 = %sha256, "evidence content is missing from the store");
                record_integrity_failure(&self.db, &self.signer, item.id, &sha256, "missing")
                    .await?;
                return Err(CustodyError::ContentCorrupt { expected: sha256 }.into());
            }
            Err(e) => return Err(CustodyError::from(e).into()),
        };
        // Recorded before the first byte leaves.
        let actor = caller.subject.clone();
        let recorded_sha = sha256.clone();
        let item = record_read(&self.db, &self.signer, &caller, item.id, move |at| {
            NewEntry::new(Action::Downloaded, &actor, &reason, at).with("sha256", recorded_sha)
        })
        .await?;
        let info = pb::Content {
            sha256: sha256.clone(),
            size_bytes: item.content_size.unwrap_or_default(),
            file_name: item.content_file_name.clone().unwrap_or_default(),
            added_at: item
                .content_added_at
                .map(|t| custos_kit::time_fmt::to_timestamp(t.get())),
            added_by: item.content_added_by.clone().unwrap_or_default(),
        };
        let (tx, rx) = mpsc::channel::<Result<pb::DownloadContentResponse, Status>>(4);
        let db = self.db.clone();
        let signer = self.signer.clone();
        tokio::spawn(async move {
            let part = |p| Ok(pb::DownloadContentResponse { part: Some(p) });
            if tx
                .send(part(pb::download_content_response::Part::Info(info)))
                .await
                .is_err()
            {
                return;
            }
            let mut hasher = Sha256::new();
            while let Some(next) = reader.next().await {
                let bytes = match next {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(CustodyError::from(e).into())).await;
                        return;
                    }
                };
                hasher.update(&bytes);
                for piece in bytes.chunks(DOWNLOAD_CHUNK) {
                    let message = part(pb::download_content_response::Part::Chunk(piece.to_vec()));
                    if tx.send(message).await.is_err() {
                        // The client went away.
                        return;
                    }
                }
            }
            let actual = hex(&hasher.finalize());
            if actual != sha256 {
                tracing::error!(item_id = %item.id, reference = %item.reference, expected = %sha256, actual = %actual, "evidence content does not match its recorded SHA-256");
                let failure =
                    record_integrity_failure(&db, &signer, item.id, &sha256, &actual).await;
                let err = match failure {
                    Ok(()) => CustodyError::ContentCorrupt { expected: sha256 },
                    Err(e) => e,
                };
                let _ = tx.send(Err(err.into())).await;
            }
        });
        let stream: DownloadStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }
}

impl CustodyApi {
    /// Re-hashes an item's content: None when it still has its digest, else what is
    /// wrong (recorded in the item's chain first).
    pub(crate) async fn recheck_content(
        &self,
        row: &ItemRow,
    ) -> Result<Option<String>, CustodyError> {
        let (Some(expected), Some(key)) = (&row.content_sha256, &row.content_key) else {
            return Ok(None);
        };
        let actual = match self.store.read(key).await {
            Ok(mut reader) => {
                let mut hasher = Sha256::new();
                while let Some(bytes) = reader.next().await {
                    hasher.update(&bytes.map_err(CustodyError::from)?);
                }
                hex(&hasher.finalize())
            }
            Err(e) if e.missing => "missing".to_owned(),
            Err(e) => return Err(e.into()),
        };
        if actual == *expected {
            return Ok(None);
        }
        tracing::error!(item_id = %row.id, reference = %row.reference, expected = %expected, actual = %actual, "evidence content does not match its recorded SHA-256");
        record_integrity_failure(&self.db, &self.signer, row.id, expected, &actual).await?;
        Ok(Some(if actual == "missing" {
            format!("the content (SHA-256 {expected}) is missing from the store")
        } else {
            format!(
                "the content's SHA-256 is now {actual}, not the {expected} recorded when it was added"
            )
        }))
    }
}

/// Records in the item's chain that its content failed verification (by the service:
/// whoever was reading did nothing wrong).
pub(crate) async fn record_integrity_failure(
    db: &custos_kit::storage::Db,
    signer: &crate::signing::Signer,
    item_id: Uuid,
    expected: &str,
    actual: &str,
) -> Result<(), CustodyError> {
    let mut tx = db.begin().await?;
    let mut item = store::hold_item(&mut tx, item_id)
        .await?
        .ok_or(CustodyError::ItemNotFound)?;
    let entry = NewEntry::new(
        Action::IntegrityFailed,
        "custody",
        "content verification",
        DbTime::now(),
    )
    .with("expected_sha256", expected)
    .with("actual_sha256", actual);
    store::append(&mut tx, &mut item, entry, signer).await?;
    store::save_item(&mut tx, &item).await?;
    tx.commit().await?;
    Ok(())
}
