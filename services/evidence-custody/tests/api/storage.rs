//! The content stores' contract, run against a local directory and against an
//! S3-compatible server that the test starts itself (moto, from PyPI): content written
//! and read back, nothing visible until finished, an aborted upload leaving nothing, and
//! the unary path's chunks kept, read and removed. The whole service then runs on S3.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
};

use bytes::Bytes;
use custos_evidence_custody::{
    config::{S3Settings, StorageSettings},
    content::{ContentStore, LocalDir, S3Bucket},
};
use custos_testing::Backend;
use futures_util::StreamExt;
use uuid::Uuid;

use crate::common::{TestCustody, bytes, download, register, settings, sha256, upload};

/// A moto S3 server on a free loopback port, stopped when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts `moto_server` (CI installs it: `pip install 'moto[server]'`); a machine
    /// without it fails the test, naming what to install.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server runs (pip install 'moto[server]'): the S3 contract tests need it");
        let endpoint = format!("http://127.0.0.1:{port}");
        // Ready when it says it is running (its log is drained after, so it never
        // blocks writing it).
        let stderr = child.stderr.take().expect("piped");
        let (ready, listening) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { break };
                if line.contains("Running on")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        tokio::time::timeout(std::time::Duration::from_secs(60), listening)
            .await
            .expect("moto_server started within a minute")
            .expect("moto_server said it was running");
        Self { child, endpoint }
    }

    /// A new bucket's settings.
    pub async fn bucket(&self) -> S3Settings {
        let name = format!("custody-{}", Uuid::new_v4().simple());
        // moto creates buckets on a plain PUT.
        let client = tokio::net::TcpStream::connect(self.endpoint.trim_start_matches("http://"))
            .await
            .unwrap();
        drop(client);
        let status = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import urllib.request as u; u.urlopen(u.Request('{}/{name}', method='PUT')).read()",
                    self.endpoint
                ),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "bucket {name} created");
        S3Settings {
            bucket: name,
            region: "us-east-1".into(),
            endpoint: Some(self.endpoint.clone()),
            path_style: true,
            allow_http: true,
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".to_owned().into()),
            prefix: "custos/".into(),
        }
    }
}

async fn read_all(store: &ContentStore, key: &str) -> Vec<u8> {
    let mut stream = store.read(key).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

async fn contract(store: ContentStore) {
    store.check().await.unwrap();
    // Written in pieces, finished, read back.
    let content = bytes(20 * 1024 * 1024 + 3);
    let digest: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::default(),
        &content,
    ))
    .into();
    let mut staging = store.stage().await.unwrap();
    for piece in content.chunks(1024 * 1024) {
        staging.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    let key = staging.finish(&digest).await.unwrap();
    assert_eq!(read_all(&store, &key).await, content);

    // Aborted or dropped: nothing to read.
    let mut aborted = store.stage().await.unwrap();
    aborted.write(Bytes::from_static(b"half")).await.unwrap();
    aborted.abort().await;
    let mut dropped = store.stage().await.unwrap();
    dropped.write(Bytes::from_static(b"half")).await.unwrap();
    drop(dropped);

    // Chunks of a unary upload.
    let upload = Uuid::now_v7();
    let a = store
        .put_part(upload, 0, Bytes::from_static(b"hello "))
        .await
        .unwrap();
    let b = store
        .put_part(upload, 6, Bytes::from_static(b"world"))
        .await
        .unwrap();
    assert_eq!(
        store.read_part(&a).await.unwrap(),
        Bytes::from_static(b"hello ")
    );
    assert_eq!(
        store.read_part(&b).await.unwrap(),
        Bytes::from_static(b"world")
    );
    // Rewritten (a retry whose record was lost): the same key, the new bytes.
    assert_eq!(
        store
            .put_part(upload, 6, Bytes::from_static(b"world"))
            .await
            .unwrap(),
        b
    );
    store.delete_parts(upload).await.unwrap();
    assert!(store.read_part(&a).await.is_err());
    store.delete_parts(upload).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_directory_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::open(dir.path()).unwrap();
    contract(ContentStore::Local(local)).await;
    // Nothing left in staging.
    assert_eq!(
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_bucket_keeps_the_contract() {
    let server = S3Server::start().await;
    let bucket = server.bucket().await;
    contract(ContentStore::S3(S3Bucket::new(&bucket).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_content_in_s3() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), crate::common::NOWHERE);
    s.storage = StorageSettings {
        dir: None,
        s3: Some(server.bucket().await),
    };
    let svc = TestCustody::start_with(Backend::Sqlite, dir, s, |_| {}).await;
    svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();
    let item = register(&mut responder, "INC-2026-000001").await;
    let content = bytes(7 * 1024 * 1024);
    let wrong = upload(
        &mut responder,
        &item.id,
        &content,
        &sha256(b"x"),
        1024 * 1024,
    )
    .await
    .unwrap_err();
    assert_eq!(crate::common::reason(&wrong), "DIGEST_MISMATCH");
    let added = upload(
        &mut responder,
        &item.id,
        &content,
        &sha256(&content),
        1024 * 1024,
    )
    .await
    .unwrap();
    assert_eq!(added.content.unwrap().sha256, sha256(&content));
    assert_eq!(download(&mut responder, &item.id).await.unwrap(), content);
    let v = responder
        .verify_chain(custos_proto::custody::v1::VerifyChainRequest {
            item_id: item.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.verified && v.content_verified, "{v:?}");
}
