//! Content in a local directory: `objects/sha256/<2 hex>/<64 hex>`, read-only files
//! named by their digest. Each upload is written by a blocking thread of its own (so
//! that hashing and writing overlap on two cores) to `staging/<uuid>`, synced, renamed
//! into place, and the directory synced.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use tokio::{sync::mpsc, task::JoinHandle};
use uuid::Uuid;

use super::{ByteStream, ContentError};

/// Chunks queued for the writing thread.
const QUEUE: usize = 8;
/// Bytes read at a time.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ContentError {
    ContentError::new(format!("{what} {}: {e}", path.display()))
}

/// SHA-256 of a stored file.
fn digest_of(path: &Path) -> Result<[u8; 32], ContentError> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).map_err(|e| io("cannot open", path, e))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut f, &mut hasher).map_err(|e| io("cannot read", path, e))?;
    Ok(hasher.finalize().into())
}

fn sync_dir(dir: &Path) -> Result<(), ContentError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync", dir, e))
}

impl LocalDir {
    /// The store under `root` (created if missing); files left in `staging/` by a
    /// process that stopped mid-upload are removed.
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        for sub in ["objects", "staging", "uploads"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        }
        let staging = root.join("staging");
        for entry in std::fs::read_dir(&staging).map_err(|e| io("cannot read", &staging, e))? {
            let path = entry.map_err(|e| io("cannot read", &staging, e))?.path();
            std::fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub(super) async fn check(&self) -> Result<(), ContentError> {
        let probe = self
            .root
            .join("staging")
            .join(format!("probe-{}", Uuid::now_v7()));
        tokio::fs::write(&probe, b"probe")
            .await
            .map_err(|e| io("cannot write", &probe, e))?;
        tokio::fs::remove_file(&probe)
            .await
            .map_err(|e| io("cannot remove", &probe, e))
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, ContentError> {
        // Keys are ours (`sha256/ab/<hex>`); refuse anything else rather than join it.
        let ok = key.len() == 7 + 3 + 64
            && key.starts_with("sha256/")
            && key[7..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase() || b == b'/');
        if !ok {
            return Err(ContentError::new(format!(
                "`{key}` is not a key of this store"
            )));
        }
        Ok(self.root.join("objects").join(key))
    }

    pub(super) fn stage(&self) -> Result<Staging, ContentError> {
        let path = self.root.join("staging").join(Uuid::now_v7().to_string());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io("cannot create", &path, e))?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        let thread_path = path.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut file = file;
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)
                    .map_err(|e| io("cannot write", &thread_path, e))?;
            }
            file.sync_all()
                .map_err(|e| io("cannot sync", &thread_path, e))
        });
        Ok(Staging {
            path,
            root: self.root.clone(),
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    pub(super) async fn read(&self, key: &str) -> Result<ByteStream, ContentError> {
        let path = self.object_path(key)?;
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ContentError::missing(format!("{} is missing", path.display()))
            } else {
                io("cannot open", &path, e)
            }
        })?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK);
        let key = key.to_owned();
        Ok(Box::pin(futures_util::StreamExt::map(stream, move |r| {
            r.map_err(|e| ContentError::new(format!("cannot read {key}: {e}")))
        })))
    }

    fn parts_dir(&self, upload: Uuid) -> PathBuf {
        self.root.join("uploads").join(upload.to_string())
    }

    pub(super) async fn put_part(
        &self,
        upload: Uuid,
        offset: i64,
        data: Bytes,
    ) -> Result<String, ContentError> {
        let dir = self.parts_dir(upload);
        let key = format!("{offset:020}");
        let path = dir.join(&key);
        tokio::task::spawn_blocking(move || {
            let created = !dir.exists();
            std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
            if created && let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            let tmp = dir.join(format!("{key}.tmp"));
            let mut f = std::fs::File::create(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
            f.write_all(&data)
                .and_then(|()| f.sync_all())
                .map_err(|e| io("cannot write", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io("cannot rename", &tmp, e))?;
            sync_dir(&dir)
        })
        .await
        .map_err(|e| ContentError::new(format!("the writer stopped: {e}")))??;
        Ok(format!("uploads/{upload}/{offset:020}"))
    }

    /// Reads one chunk of a unary upload back.
    pub(super) async fn read_part(&self, key: &str) -> Result<Bytes, ContentError> {
        let ok = key.starts_with("uploads/") && !key.contains("..");
        if !ok {
            return Err(ContentError::new(format!(
                "`{key}` is not a chunk of this store"
            )));
        }
        let path = self.root.join(key);
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| io("cannot read", &path, e))
    }

    pub(super) async fn delete_parts(&self, upload: Uuid) -> Result<(), ContentError> {
        let dir = self.parts_dir(upload);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove", &dir, e)),
        }
    }
}

/// An upload being written to `staging/`. Dropped unfinished, its file is removed.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    root: PathBuf,
    tx: Option<mpsc::Sender<Bytes>>,
    writer: Option<JoinHandle<Result<(), ContentError>>>,
}

impl Staging {
    pub(super) async fn write(&mut self, data: Bytes) -> Result<(), ContentError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(data).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.tx = None;
        match self.writer.take() {
            Some(w) => match w.await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) | Err(_) => Err(ContentError::new("the writer stopped")),
            },
            None => Err(ContentError::new("the writer stopped")),
        }
    }

    pub(super) async fn finish(mut self, sha256: &[u8; 32]) -> Result<String, ContentError> {
        self.tx = None;
        let writer = self
            .writer
            .take()
            .ok_or_else(|| ContentError::new("the writer stopped"))?;
        writer
            .await
            .map_err(|e| ContentError::new(format!("the writer stopped: {e}")))??;
        let hex = crate::chain::hex(sha256);
        let key = format!("sha256/{}/{hex}", &hex[..2]);
        let dir = self.root.join("objects").join("sha256").join(&hex[..2]);
        let target = dir.join(&hex);
        let staged = self.path.clone();
        let expected = *sha256;
        tokio::task::spawn_blocking(move || {
            let created = !dir.exists();
            std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
            if created && let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            if target.exists() {
                if digest_of(&target)? == expected {
                    // The same bytes are kept already (and are never rewritten).
                    std::fs::remove_file(&staged).map_err(|e| io("cannot remove", &staged, e))?;
                    return Ok(());
                }
                // What is there was damaged: the good bytes just received replace it.
                tracing::error!(file = %target.display(), "stored content did not match its digest; replaced by a new upload of the same content");
                std::fs::remove_file(&target).map_err(|e| io("cannot remove", &target, e))?;
            }
            let mut perms = std::fs::metadata(&staged)
                .map_err(|e| io("cannot read", &staged, e))?
                .permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(&staged, perms)
                .map_err(|e| io("cannot protect", &staged, e))?;
            std::fs::rename(&staged, &target)
                .map_err(|e| io("cannot move into place", &staged, e))?;
            sync_dir(&dir)
        })
        .await
        .map_err(|e| ContentError::new(format!("the writer stopped: {e}")))??;
        self.path = PathBuf::new();
        Ok(key)
    }

    pub(super) async fn abort(mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.await;
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            // Unfinished: whatever was written goes (the thread ends as its queue closes).
            self.tx = None;
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
