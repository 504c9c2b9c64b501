//! The unary upload path, for clients that cannot stream requests (browsers over
//! grpc-web): CreateUpload, WriteUpload at the upload's end (a retried chunk succeeds
//! without writing), GetUpload to resume, FinalizeUpload to check the digest and add the
//! content as the streamed upload does.

use bytes::Bytes;
use custos_kit::{
    auth::{Principal, require_authenticated},
    error::Violations,
    idempotency::{self, Claim, Key},
    storage::{DbTime, StorageError},
};
use custos_proto::custody::v1 as pb;
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    CustodyApi,
    content::{may_add, parse_start, sha256_field},
    item_to_wire, visible_item,
};
use crate::{
    error::CustodyError,
    store::{self, UploadRow},
};

impl CustodyApi {
    pub(crate) async fn create_upload(
        &self,
        r: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::CreateUploadResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        let start = match &req.start {
            Some(s) => {
                if !s.expected_sha256.is_empty() {
                    v.add(
                        "start.expected_sha256",
                        "is given to FinalizeUpload, which checks it",
                    );
                }
                parse_start(&mut v, "start.", s)
            }
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
                // A replay answers only someone who may still see the item.
                visible_item(&mut tx, &caller, &start.item).await?;
                return Ok(Response::new(response));
            }
            Claim::New(pending) => pending,
        };
        let (item, _) = visible_item(&mut tx, &caller, &start.item).await?;
        may_add(&item, None)?;
        let now = DbTime::now();
        let row = UploadRow {
            id: Uuid::now_v7(),
            item_id: item.id,
            created_by: caller.subject.clone(),
            file_name: start.file_name,
            reason: start.reason,
            committed_size: 0,
            created_at: now,
            updated_at: now,
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
            return Err(CustodyError::UploadFinalized.into());
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
            .seal_staging(staging, hasher, size, Some(expected), "expected_sha256")
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
}

fn upload_to_wire(u: &UploadRow) -> pb::Upload {
    pb::Upload {
        id: u.id.to_string(),
        item_id: u.item_id.to_string(),
        committed_size: u.committed_size,
        finalized: u.finalized,
    }
}
