//! Moving content for `custos custody upload` and `download`: a file read ahead by a
//! thread of its own and streamed in 1 MiB messages, and a download written to a new file
//! and verified here as well; both with progress bars.

use std::{io::Read, path::PathBuf};

use custos_proto::custody::v1 as pb;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{custody_cli::Client, output};

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Reads the file in pieces on a blocking thread, sending each to `tx`.
fn read_pieces(
    file: PathBuf,
    piece: usize,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>,
) {
    std::thread::spawn(move || {
        let mut f = match std::fs::File::open(&file) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("cannot open {}: {e}", file.display())));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; piece];
            let mut filled = 0;
            while filled < piece {
                match f.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let _ =
                            tx.blocking_send(Err(format!("cannot read {}: {e}", file.display())));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.blocking_send(Ok(buf)).is_err() {
                return;
            }
        }
    });
}

/// Uploads a file in 1 MiB messages; `expected` is its SHA-256 (hex) if known.
pub async fn upload_file(
    client: &mut Client,
    item: &str,
    file: &std::path::Path,
    expected: &str,
    reason: &str,
    progress: Option<ProgressBar>,
) -> Result<pb::EvidenceItem, String> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    read_pieces(file.to_owned(), 1024 * 1024, tx);
    let start = pb::UploadContentRequest {
        part: Some(pb::upload_content_request::Part::Start(pb::UploadStart {
            item_id: item.to_owned(),
            expected_sha256: expected.to_owned(),
            file_name: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            reason: reason.to_owned(),
        })),
    };
    // A read error ends the call (ending the stream short would upload a truncated
    // file; the server keeps nothing of a failed call).
    let (failed, mut read_error) = tokio::sync::oneshot::channel::<String>();
    let failed = std::sync::Arc::new(std::sync::Mutex::new(Some(failed)));
    let chunks = futures_util::stream::unfold(rx, move |mut rx| {
        let progress = progress.clone();
        let failed = failed.clone();
        async move {
            match rx.recv().await {
                Some(Ok(bytes)) => {
                    if let Some(p) = &progress {
                        p.inc(bytes.len() as u64);
                    }
                    let message = pb::UploadContentRequest {
                        part: Some(pb::upload_content_request::Part::Chunk(bytes)),
                    };
                    Some((message, rx))
                }
                Some(Err(e)) => {
                    if let Some(tx) = failed.lock().expect("not poisoned").take() {
                        let _ = tx.send(e);
                    }
                    std::future::pending::<()>().await;
                    None
                }
                None => None,
            }
        }
    });
    let stream =
        futures_util::StreamExt::chain(futures_util::stream::once(async move { start }), chunks);
    tokio::select! {
        result = client.upload_content(stream) => result
            .map(|r| r.into_inner().item.unwrap_or_default())
            .map_err(|s| output::status_error(&s)),
        Ok(e) = &mut read_error => Err(e),
    }
}

/// SHA-256 of a file, with progress.
pub(crate) fn hash_file(file: &std::path::Path, progress: &ProgressBar) -> Result<String, String> {
    let mut f =
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.inc(n as u64);
    }
    Ok(data_encoding::HEXLOWER.encode(&hasher.finalize()))
}

/// Downloads an item's content to `out` (created new), verifying its SHA-256 here too;
/// a partial or damaged file is removed. Returns the content's description.
pub async fn download_file(
    client: &mut Client,
    item: &str,
    out: &std::path::Path,
    reason: &str,
    show_progress: bool,
) -> Result<pb::Content, String> {
    let mut stream = client
        .download_content(pb::DownloadContentRequest {
            item_id: item.to_owned(),
            reason: reason.to_owned(),
        })
        .await
        .map_err(|s| output::status_error(&s))?
        .into_inner();
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .await
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let result: Result<pb::Content, String> = async {
        let mut info = None;
        let mut hasher = Sha256::new();
        let mut progress = None;
        loop {
            let message = stream
                .message()
                .await
                .map_err(|s| output::status_error(&s))?;
            match message.and_then(|m| m.part) {
                Some(pb::download_content_response::Part::Info(i)) => {
                    if show_progress {
                        progress = Some(bar(u64::try_from(i.size_bytes).unwrap_or(0), "download"));
                    }
                    info = Some(i);
                }
                Some(pb::download_content_response::Part::Chunk(bytes)) => {
                    hasher.update(&bytes);
                    file.write_all(&bytes)
                        .await
                        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
                    if let Some(p) = &progress {
                        p.inc(bytes.len() as u64);
                    }
                }
                None => break,
            }
        }
        if let Some(p) = &progress {
            p.finish_and_clear();
        }
        let info = info.ok_or("the service sent no description of the content")?;
        let actual = data_encoding::HEXLOWER.encode(&hasher.finalize());
        if actual != info.sha256 {
            return Err(format!(
                "the bytes received have SHA-256 {actual}, not the recorded {}",
                info.sha256
            ));
        }
        file.sync_all()
            .await
            .map_err(|e| format!("cannot sync {}: {e}", out.display()))?;
        Ok(info)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(out).await;
    }
    result
}
