//! Content: the client-streaming upload, the unary chunked upload (for browsers), and
//! the verified download.

use std::pin::Pin;

use bytes::Bytes;
use custos_kit::{
    auth::{Principal, require_authenticated},
    error::{FieldViolation, Violations, text},
    idempotency::{self, Claim, Key},
    storage::{DbTime, StorageError},
};
use custos_proto::custody::v1 as pb;
use futures_util::{Stream, StreamExt};
use prost::Message;
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
    store::{self, ItemRow, NewEntry, UploadRow},
};

/// The stream DownloadContent returns.
pub type DownloadStream =
    Pin<Box<dyn Stream<Item = Result<pb::DownloadContentResponse, Status>> + Send>>;

/// The largest piece of content sent in one message.
const DOWNLOAD_CHUNK: usize = 1024 * 1024;

/// A validated `UploadStart`.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    item: super::ItemRef,
    expected: Option<[u8; 32]>,
    file_name: String,
    reason: String,
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

fn parse_start(v: &mut Violations, prefix: &str, s: &pb::UploadStart) -> Option<Start> {
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
fn may_add(item: &ItemRow, sha256: Option<&[u8; 32]>) -> Result<bool, CustodyError> {
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
struct Written {
    sha256: [u8; 32],
    size: i64,
    key: String,
}

impl CustodyApi {
    /// Makes the staged bytes durable under their digest if they match what the client
    /// expected, or drops them.
    async fn seal_staging(
        &self,
        staging: Staging,
        hasher: Sha256,
        size: i64,
        expected: Option<[u8; 32]>,
    ) -> Result<Written, CustodyError> {
        let sha256: [u8; 32] = hasher.finalize().into();
        if let Some(expected) = expected
            && expected != sha256
        {
            staging.abort().await;
            return Err(CustodyError::DigestMismatch {
                expected: hex(&expected),
                actual: hex(&sha256),
            });
        }
        let key = staging.finish(&sha256).await?;
        Ok(Written { sha256, size, key })
    }

    /// Records the written bytes as the item's content (or, for a retry whose bytes are
    /// its content already, changes nothing) and returns the item.
    async fn add_content(
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
            store::append(&mut tx, &mut item, entry).await?;
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
        let first = stream.message().await?;
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
            let message = match stream.message().await {
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
        let written = match self.seal_staging(staging, hasher, size, expected).await {
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

    pub(crate) async fn create_upload(
        &self,
        r: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::CreateUploadResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        let start = match &req.start {
            Some(s) => parse_start(&mut v, "start.", s),
            None => {
                v.add("start", "is required");
                None
            }
        };
        v.finish().map_err(CustodyError::Invalid)?;
        let start = start.expect("validated");
        let key = Key::new(&caller.subject, "CreateUpload", &req.idempotency_key);
        let fingerprint = idempotency::fingerprint(&(&start.item, &start.file_name, &start.reason));
        let mut tx = self.db.begin().await.map_err(CustodyError::from)?;
        let pending = match idempotency::claim(&mut tx, &key, &fingerprint)
            .await
            .map_err(CustodyError::from)?
        {
            Claim::Replay(bytes) => {
                let response = pb::CreateUploadResponse::decode(bytes.as_slice())
                    .map_err(|e| CustodyError::Storage(StorageError::Corrupt(e.to_string())))?;
                return Ok(Response::new(response));
            }
            Claim::New(pending) => pending,
        };
        let (item, _) = visible_item(&mut tx, &caller, &start.item).await?;
        may_add(&item, None)?;
        let row = UploadRow {
            id: Uuid::now_v7(),
            item_id: item.id,
            created_by: caller.subject.clone(),
            file_name: start.file_name,
            reason: start.reason,
            committed_size: 0,
            created_at: DbTime::now(),
            finalized: false,
        };
        store::insert_upload(&mut tx, &row)
            .await
            .map_err(CustodyError::from)?;
        let response = pb::CreateUploadResponse {
            upload: Some(upload_to_wire(&row)),
        };
        idempotency::complete(&mut tx, pending, &response)
            .await
            .map_err(CustodyError::from)?;
        tx.commit().await.map_err(CustodyError::from)?;
        Ok(Response::new(response))
    }

    /// An upload the caller made, for an item they still see.
    async fn own_upload(
        &self,
        caller: &Principal,
        v: &mut Violations,
        raw: &str,
    ) -> Result<UploadRow, CustodyError> {
        let id = if raw.is_empty() {
            v.add("upload_id", "is required");
            None
        } else {
            v.check(
                "upload_id",
                Uuid::try_parse(raw).map_err(|_| "is not an id (a UUID)"),
            )
        };
        std::mem::take(v).finish().map_err(CustodyError::Invalid)?;
        let mut conn = self.db.read().await?;
        let upload = store::upload(&mut conn, id.expect("validated"))
            .await?
            .filter(|u| u.created_by == caller.subject)
            .ok_or(CustodyError::UploadNotFound)?;
        visible_item(&mut conn, caller, &super::ItemRef::Id(upload.item_id))
            .await
            .map_err(|e| match e {
                CustodyError::ItemNotFound => CustodyError::UploadNotFound,
                other => other,
            })?;
        Ok(upload)
    }

    pub(crate) async fn write_upload(
        &self,
        r: Request<pb::WriteUploadRequest>,
    ) -> Result<Response<pb::WriteUploadResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        if req.offset < 0 {
            v.add("offset", "must not be negative");
        }
        if req.data.is_empty() {
            v.add("data", "is required (at least one byte)");
        }
        let upload = self.own_upload(&caller, &mut v, &req.upload_id).await?;
        let length = i64::try_from(req.data.len()).unwrap_or(i64::MAX);
        let mut tx = self.db.begin().await.map_err(CustodyError::from)?;
        let mut held = store::hold_upload(&mut tx, upload.id)
            .await
            .map_err(CustodyError::from)?
            .ok_or(CustodyError::UploadNotFound)?;
        if held.finalized {
            return Err(CustodyError::UploadOffset {
                offset: req.offset,
                committed: held.committed_size,
            }
            .into());
        }
        if req.offset != held.committed_size {
            // A retry of a chunk already kept (same offset and length) succeeds.
            let chunks = store::chunks_of(&mut tx, upload.id)
                .await
                .map_err(CustodyError::from)?;
            if chunks
                .iter()
                .any(|(o, l, _)| *o == req.offset && *l == length)
            {
                return Ok(Response::new(pb::WriteUploadResponse {
                    upload: Some(upload_to_wire(&held)),
                }));
            }
            return Err(CustodyError::UploadOffset {
                offset: req.offset,
                committed: held.committed_size,
            }
            .into());
        }
        // Kept (synced) while the upload is held, then recorded: a chunk whose record
        // did not commit is written again by the retry, under the same key.
        let key = self
            .store
            .put_part(upload.id, req.offset, Bytes::from(req.data))
            .await
            .map_err(CustodyError::from)?;
        store::add_chunk(&mut tx, upload.id, req.offset, length, &key)
            .await
            .map_err(CustodyError::from)?;
        tx.commit().await.map_err(CustodyError::from)?;
        held.committed_size += length;
        Ok(Response::new(pb::WriteUploadResponse {
            upload: Some(upload_to_wire(&held)),
        }))
    }

    pub(crate) async fn get_upload(
        &self,
        r: Request<pb::GetUploadRequest>,
    ) -> Result<Response<pb::GetUploadResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let upload = self.own_upload(&caller, &mut v, &req.upload_id).await?;
        Ok(Response::new(pb::GetUploadResponse {
            upload: Some(upload_to_wire(&upload)),
        }))
    }

    pub(crate) async fn finalize_upload(
        &self,
        r: Request<pb::FinalizeUploadRequest>,
    ) -> Result<Response<pb::FinalizeUploadResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let expected = sha256_field(&mut v, "expected_sha256", &req.expected_sha256, true);
        let upload = self.own_upload(&caller, &mut v, &req.upload_id).await?;
        let expected = expected.expect("validated");
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let (item, _) =
            visible_item(&mut conn, &caller, &super::ItemRef::Id(upload.item_id)).await?;
        let chunks = store::chunks_of(&mut conn, upload.id)
            .await
            .map_err(CustodyError::from)?;
        drop(conn);
        if upload.finalized {
            // A retry after success: the item as it is.
            let mut conn = self.db.read().await.map_err(CustodyError::from)?;
            let (item, incident) =
                visible_item(&mut conn, &caller, &super::ItemRef::Id(item.id)).await?;
            return Ok(Response::new(pb::FinalizeUploadResponse {
                item: Some(item_to_wire(&item, &incident)),
            }));
        }
        may_add(&item, Some(&expected))?;
        let mut staging = self.store.stage().await.map_err(CustodyError::from)?;
        let mut hasher = Sha256::new();
        let mut size = 0i64;
        for (offset, length, key) in &chunks {
            if *offset != size {
                staging.abort().await;
                return Err(CustodyError::Storage(StorageError::Corrupt(format!(
                    "upload {} has no chunk at offset {size}",
                    upload.id
                )))
                .into());
            }
            let data = match self.store.read_part(key).await {
                Ok(d) => d,
                Err(e) => {
                    staging.abort().await;
                    return Err(CustodyError::from(e).into());
                }
            };
            hasher.update(&data);
            size += length;
            if let Err(e) = staging.write(data).await {
                staging.abort().await;
                return Err(CustodyError::from(e).into());
            }
        }
        let written = self
            .seal_staging(staging, hasher, size, Some(expected))
            .await?;
        let item = self
            .add_content(
                &caller,
                item.id,
                &written,
                &upload.file_name,
                &upload.reason,
                Some(upload.id),
            )
            .await?;
        if let Err(e) = self.store.delete_parts(upload.id).await {
            tracing::warn!(upload_id = %upload.id, error = %e, "the upload's chunks could not be removed; the expiry sweep removes them");
        }
        Ok(Response::new(pb::FinalizeUploadResponse {
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
        let (item, _) = visible_item(&mut conn, &caller, &item.expect("validated")).await?;
        drop(conn);
        let (Some(sha256), Some(key)) = (item.content_sha256.clone(), item.content_key.clone())
        else {
            return Err(CustodyError::NoContent.into());
        };
        // Recorded before the first byte leaves.
        let actor = caller.subject.clone();
        let recorded_sha = sha256.clone();
        let item = record_read(&self.db, &caller, item.id, move |at| {
            NewEntry::new(Action::Downloaded, &actor, &reason, at).with("sha256", recorded_sha)
        })
        .await?;
        let mut reader = self.store.read(&key).await.map_err(CustodyError::from)?;
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
                let failure = record_integrity_failure(&db, item.id, &sha256, &actual).await;
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

/// Records in the item's chain that its content failed verification (by the service:
/// whoever was reading did nothing wrong).
pub(crate) async fn record_integrity_failure(
    db: &custos_kit::storage::Db,
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
    store::append(&mut tx, &mut item, entry).await?;
    store::save_item(&mut tx, &item).await?;
    tx.commit().await?;
    Ok(())
}

fn upload_to_wire(u: &UploadRow) -> pb::Upload {
    pb::Upload {
        id: u.id.to_string(),
        item_id: u.item_id.to_string(),
        committed_size: u.committed_size,
        finalized: u.finalized,
    }
}
