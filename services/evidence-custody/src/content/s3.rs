//! Content in an S3-compatible bucket through the `object_store` crate: each upload is a
//! multipart upload to a key of its own (`objects/<uuid>`), invisible until it is
//! completed (S3 makes a completed object durable before it answers), aborted when
//! dropped or failed. Keys are never reused, so an object is never overwritten; with
//! Object Lock on the bucket, the store itself also refuses to change or delete it.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::{
    ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart,
    aws::{AmazonS3, AmazonS3Builder},
    path::Path,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{ByteStream, ContentError};
use crate::config::S3Settings;

/// Size of each part sent to the bucket.
const PART: usize = 16 * 1024 * 1024;
/// Parts in flight at once.
const IN_FLIGHT: usize = 4;

#[derive(Debug, Clone)]
pub struct S3Bucket {
    store: Arc<AmazonS3>,
    prefix: String,
}

fn s3(what: &str, e: object_store::Error) -> ContentError {
    ContentError::new(format!("{what}: {e}"))
}

impl S3Bucket {
    pub fn new(s: &S3Settings) -> Result<Self, ContentError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(&s.region)
            .with_allow_http(s.allow_http)
            .with_virtual_hosted_style_request(!s.path_style);
        if let Some(endpoint) = &s.endpoint {
            b = b.with_endpoint(endpoint);
        }
        if let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
            b = b
                .with_access_key_id(id)
                .with_secret_access_key(secret.expose_secret());
        }
        let store = b.build().map_err(|e| s3("the bucket's settings", e))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: s.prefix.clone(),
        })
    }

    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}{key}", self.prefix))
    }

    pub(super) async fn check(&self) -> Result<(), ContentError> {
        let probe = self.path(&format!("probe/{}", Uuid::now_v7()));
        self.store
            .put(&probe, PutPayload::from_static(b"probe"))
            .await
            .map_err(|e| s3("cannot write to the bucket", e))?;
        // Under Object Lock the probe cannot be deleted: that is fine.
        let _ = self.store.delete(&probe).await;
        Ok(())
    }

    pub(super) async fn stage(&self) -> Result<Staging, ContentError> {
        let key = format!("objects/{}", Uuid::now_v7());
        let upload = self
            .store
            .put_multipart(&self.path(&key))
            .await
            .map_err(|e| s3("cannot start an upload", e))?;
        Ok(Staging {
            key,
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART)),
        })
    }

    pub(super) async fn read(&self, key: &str) -> Result<ByteStream, ContentError> {
        let got = self.store.get(&self.path(key)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                ContentError::missing(format!("{key} is missing from the bucket"))
            }
            e => s3(&format!("cannot read {key}"), e),
        })?;
        let key = key.to_owned();
        Ok(Box::pin(
            got.into_stream()
                .map_err(move |e| s3(&format!("cannot read {key}"), e)),
        ))
    }

    pub(super) async fn put_part(
        &self,
        upload: Uuid,
        offset: i64,
        data: Bytes,
    ) -> Result<String, ContentError> {
        let key = format!("uploads/{upload}/{offset:020}");
        let put = self
            .store
            .put_opts(
                &self.path(&key),
                PutPayload::from(data),
                PutOptions {
                    mode: PutMode::Overwrite,
                    ..PutOptions::default()
                },
            )
            .await;
        put.map_err(|e| s3("cannot keep the chunk", e))?;
        Ok(key)
    }

    pub(super) async fn read_part(&self, key: &str) -> Result<Bytes, ContentError> {
        self.store
            .get(&self.path(key))
            .await
            .map_err(|e| s3(&format!("cannot read {key}"), e))?
            .bytes()
            .await
            .map_err(|e| s3(&format!("cannot read {key}"), e))
    }

    pub(super) async fn delete_parts(&self, upload: Uuid) -> Result<(), ContentError> {
        let prefix = self.path(&format!("uploads/{upload}/"));
        let listed: Vec<_> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| s3("cannot list an upload's chunks", e))?;
        for p in listed {
            self.store
                .delete(&p)
                .await
                .map_err(|e| s3("cannot remove a chunk", e))?;
        }
        Ok(())
    }
}

/// A multipart upload in progress; dropped unfinished, it is aborted.
pub struct Staging {
    key: String,
    upload: Option<WriteMultipart>,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Staging {
    pub(super) async fn write(&mut self, data: Bytes) -> Result<(), ContentError> {
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| ContentError::new("the upload ended"))?;
        upload
            .wait_for_capacity(IN_FLIGHT)
            .await
            .map_err(|e| s3("cannot upload a part", e))?;
        upload.put(data);
        Ok(())
    }

    pub(super) async fn finish(mut self) -> Result<String, ContentError> {
        let upload = self
            .upload
            .take()
            .ok_or_else(|| ContentError::new("the upload ended"))?;
        upload
            .finish()
            .await
            .map_err(|e| s3("cannot complete the upload", e))?;
        Ok(std::mem::take(&mut self.key))
    }

    pub(super) async fn abort(mut self) {
        if let Some(upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(error = %e, "an unfinished upload could not be aborted: the bucket's lifecycle rule for incomplete multipart uploads removes it");
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            // Dropped mid-upload (the client went away): abort in the background.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = upload.abort().await;
                });
            }
        }
    }
}
