//! Where content is kept: a local directory (standalone) or an S3-compatible bucket
//! (distributed), behind one interface that the same contract tests run against.
//!
//! Content is written once and never changed. An upload is staged (a temporary file,
//! or an S3 multipart upload that is invisible until completed), synced, and only then
//! made visible under its key; an upload that is dropped, fails or does not match its
//! digest leaves nothing behind. The unary upload path keeps each chunk as an object of
//! its own until the upload is finalised.

mod local;
mod s3;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use uuid::Uuid;

pub use local::LocalDir;
pub use s3::S3Bucket;

/// A failure of the store (a disk, the bucket). Its text is for the log.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ContentError {
    pub message: String,
    /// The content asked for is not in the store (it was removed behind the service's
    /// back): not a passing fault.
    pub missing: bool,
}

impl ContentError {
    pub fn new(what: impl std::fmt::Display) -> Self {
        Self {
            message: what.to_string(),
            missing: false,
        }
    }

    pub fn missing(what: impl std::fmt::Display) -> Self {
        Self {
            message: what.to_string(),
            missing: true,
        }
    }
}

/// Bytes as they are read from the store.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ContentError>> + Send>>;

/// The store.
#[derive(Debug, Clone)]
pub enum ContentStore {
    Local(LocalDir),
    S3(S3Bucket),
}

/// An upload being written.
#[derive(Debug)]
pub enum Staging {
    Local(local::Staging),
    S3(s3::Staging),
}

impl ContentStore {
    /// Checks that the store can be written (at start: a wrong path or credentials
    /// stop the start, not the first upload).
    pub async fn check(&self) -> Result<(), ContentError> {
        match self {
            ContentStore::Local(s) => s.check().await,
            ContentStore::S3(s) => s.check().await,
        }
    }

    /// Starts writing new content.
    pub async fn stage(&self) -> Result<Staging, ContentError> {
        Ok(match self {
            ContentStore::Local(s) => Staging::Local(s.stage()?),
            ContentStore::S3(s) => Staging::S3(s.stage().await?),
        })
    }

    /// Reads content by key, in pieces.
    pub async fn read(&self, key: &str) -> Result<ByteStream, ContentError> {
        match self {
            ContentStore::Local(s) => s.read(key).await,
            ContentStore::S3(s) => s.read(key).await,
        }
    }

    /// Keeps one chunk of a unary upload (synced); returns its key.
    pub async fn put_part(
        &self,
        upload: Uuid,
        offset: i64,
        data: Bytes,
    ) -> Result<String, ContentError> {
        match self {
            ContentStore::Local(s) => s.put_part(upload, offset, data).await,
            ContentStore::S3(s) => s.put_part(upload, offset, data).await,
        }
    }

    /// Reads one chunk of a unary upload back, by the key `put_part` gave.
    pub async fn read_part(&self, key: &str) -> Result<Bytes, ContentError> {
        match self {
            ContentStore::Local(s) => s.read_part(key).await,
            ContentStore::S3(s) => s.read_part(key).await,
        }
    }

    /// Removes the chunks of a unary upload (once its content is kept, or it expired).
    pub async fn delete_parts(&self, upload: Uuid) -> Result<(), ContentError> {
        match self {
            ContentStore::Local(s) => s.delete_parts(upload).await,
            ContentStore::S3(s) => s.delete_parts(upload).await,
        }
    }
}

impl Staging {
    /// Writes the next bytes (waits while the store is behind).
    pub async fn write(&mut self, data: Bytes) -> Result<(), ContentError> {
        match self {
            Staging::Local(s) => s.write(data).await,
            Staging::S3(s) => s.write(data).await,
        }
    }

    /// Makes the bytes durable and visible under their digest; returns their key.
    pub async fn finish(self, sha256: &[u8; 32]) -> Result<String, ContentError> {
        match self {
            Staging::Local(s) => s.finish(sha256).await,
            Staging::S3(s) => s.finish().await,
        }
    }

    /// Drops what was written.
    pub async fn abort(self) {
        match self {
            Staging::Local(s) => s.abort().await,
            Staging::S3(s) => s.abort().await,
        }
    }
}
