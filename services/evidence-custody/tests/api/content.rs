//! Content: streamed and chunked uploads hashed as they arrive, a digest mismatch or an
//! interrupted upload keeping nothing, content added once (a retry of the same bytes
//! succeeding), and downloads re-verified, ending with DATA_LOSS when the stored bytes
//! were changed.

use custos_proto::custody::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::{
    TestCustody, actions, bytes, download, fields, reason, register, sha256, upload,
};

async fn a_streamed_upload_is_hashed_kept_and_downloaded_verified(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    let content = bytes(3 * 1024 * 1024 + 17);
    let digest = sha256(&content);
    let added = upload(
        &mut responder,
        &item.id,
        &content,
        &digest.to_uppercase(),
        1024 * 1024,
    )
    .await
    .unwrap();
    let c = added.content.clone().unwrap();
    assert_eq!(c.sha256, digest);
    assert_eq!(c.size_bytes, content.len() as i64);
    assert_eq!(c.file_name, "laptop.dd");
    assert_eq!(c.added_by, "rhys");
    assert_eq!(added.revision, 2);
    // Kept under its digest, read-only; nothing left in staging.
    let files = svc.stored_files();
    assert_eq!(files, [format!("objects/sha256/{}/{digest}", &digest[..2])]);
    let path = svc.dir.path().join("evidence").join(&files[0]);
    assert!(std::fs::metadata(&path).unwrap().permissions().readonly());
    assert_eq!(std::fs::read(&path).unwrap(), content);

    assert_eq!(download(&mut responder, &item.id).await.unwrap(), content);
    assert_eq!(
        actions(&mut responder, &item.id).await,
        [
            pb::CustodyAction::Registered,
            pb::CustodyAction::ContentAdded,
            pb::CustodyAction::Downloaded,
            pb::CustodyAction::Accessed,
        ]
    );

    // Content is added once; the same bytes again (a retry) change nothing.
    let again = upload(&mut responder, &item.id, &content, "", 4096)
        .await
        .unwrap();
    assert_eq!(again.revision, 2);
    let other = upload(&mut responder, &item.id, b"other bytes", "", 4096)
        .await
        .unwrap_err();
    assert_eq!(
        (other.code(), reason(&other)),
        (Code::FailedPrecondition, "CONTENT_EXISTS".into())
    );
    assert!(other.message().contains(&digest), "{other:?}");
}

async fn a_digest_mismatch_or_an_interrupted_upload_keeps_nothing(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    let content = bytes(100_000);
    let wrong = sha256(b"something else");
    let mismatch = upload(&mut responder, &item.id, &content, &wrong, 8192)
        .await
        .unwrap_err();
    assert_eq!(
        (mismatch.code(), reason(&mismatch)),
        (Code::InvalidArgument, "DIGEST_MISMATCH".into())
    );
    assert!(
        mismatch.message().contains(&sha256(&content)),
        "{mismatch:?}"
    );
    assert!(svc.stored_files().is_empty(), "{:?}", svc.stored_files());

    // A stream that breaks mid-upload, after bytes were staged: its next message is
    // over the server's limit, so reading the stream fails in the handler, as it does
    // when the connection drops. The answer comes once the handler has given up, so
    // what it left behind can be looked at then.
    let broken = responder
        .upload_content(futures_util::stream::iter(vec![
            pb::UploadContentRequest {
                part: Some(pb::upload_content_request::Part::Start(pb::UploadStart {
                    item_id: item.id.clone(),
                    ..Default::default()
                })),
            },
            pb::UploadContentRequest {
                part: Some(pb::upload_content_request::Part::Chunk(content.clone())),
            },
            pb::UploadContentRequest {
                part: Some(pb::upload_content_request::Part::Chunk(vec![
                    0;
                    5 * 1024 * 1024
                ])),
            },
        ]))
        .await
        .unwrap_err();
    assert_eq!(broken.code(), Code::ResourceExhausted, "{broken:?}");
    assert!(svc.stored_files().is_empty(), "{:?}", svc.stored_files());

    let got = responder
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert!(got.content.is_none());
    assert_eq!(got.revision, 1);

    // Bad streams are named.
    let no_start = responder
        .upload_content(futures_util::stream::iter(vec![pb::UploadContentRequest {
            part: Some(pb::upload_content_request::Part::Chunk(vec![1, 2, 3])),
        }]))
        .await
        .unwrap_err();
    assert_eq!(fields(&no_start), ["start"]);
    let bad_start = responder
        .upload_content(futures_util::stream::iter(vec![pb::UploadContentRequest {
            part: Some(pb::upload_content_request::Part::Start(pb::UploadStart {
                item_id: String::new(),
                expected_sha256: "abc".into(),
                file_name: "../etc/passwd".into(),
                reason: String::new(),
            })),
        }]))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad_start),
        ["start.item_id", "start.expected_sha256", "start.file_name"]
    );
}

async fn the_chunked_path_resumes_and_finalises(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    let content = bytes(250_000);
    let start = pb::CreateUploadRequest {
        start: Some(pb::UploadStart {
            item_id: item.reference.clone(),
            file_name: "browser.bin".into(),
            ..Default::default()
        }),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    };
    let upload = responder
        .create_upload(start.clone())
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(
        responder
            .create_upload(start)
            .await
            .unwrap()
            .into_inner()
            .upload
            .unwrap(),
        upload
    );
    let write = |offset: usize, len: usize| pb::WriteUploadRequest {
        upload_id: upload.id.clone(),
        offset: offset as i64,
        data: content[offset..(offset + len).min(content.len())].to_vec(),
    };
    responder.write_upload(write(0, 100_000)).await.unwrap();
    // The same chunk again (a lost response) succeeds without writing.
    let retried = responder
        .write_upload(write(0, 100_000))
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(retried.committed_size, 100_000);
    // A gap is refused, naming where to resume.
    let gap = responder
        .write_upload(write(150_000, 10))
        .await
        .unwrap_err();
    assert_eq!(reason(&gap), "UPLOAD_OFFSET");
    let resume = responder
        .get_upload(pb::GetUploadRequest {
            upload_id: upload.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(resume.committed_size, 100_000);
    responder
        .write_upload(write(100_000, 100_000))
        .await
        .unwrap();
    responder
        .write_upload(write(200_000, 100_000))
        .await
        .unwrap();

    // Someone else's upload does not exist for them.
    let other = svc
        .officer()
        .get_upload(pb::GetUploadRequest {
            upload_id: upload.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&other), "UPLOAD_NOT_FOUND");

    let wrong = responder
        .finalize_upload(pb::FinalizeUploadRequest {
            upload_id: upload.id.clone(),
            expected_sha256: sha256(b"no"),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&wrong), "DIGEST_MISMATCH");
    let finalize = pb::FinalizeUploadRequest {
        upload_id: upload.id.clone(),
        expected_sha256: sha256(&content),
    };
    let done = responder
        .finalize_upload(finalize.clone())
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(done.content.as_ref().unwrap().sha256, sha256(&content));
    assert_eq!(done.content.as_ref().unwrap().file_name, "browser.bin");
    let again = responder
        .finalize_upload(finalize)
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(again.content, done.content);
    assert_eq!(download(&mut responder, &item.id).await.unwrap(), content);
    // The chunks are gone; the content is kept once.
    let digest = sha256(&content);
    assert_eq!(
        svc.stored_files(),
        [format!("objects/sha256/{}/{digest}", &digest[..2])]
    );

    // An upload left alone expires, chunks and all.
    let other = register(&mut responder, "INC-2026-000001").await;
    let abandoned = responder
        .create_upload(pb::CreateUploadRequest {
            start: Some(pb::UploadStart {
                item_id: other.id.clone(),
                ..Default::default()
            }),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    responder
        .write_upload(pb::WriteUploadRequest {
            upload_id: abandoned.id.clone(),
            offset: 0,
            data: vec![7; 100],
        })
        .await
        .unwrap();
    assert_eq!(svc.stored_files().len(), 2);
    let content_store = custos_evidence_custody::content::ContentStore::Local(
        custos_evidence_custody::content::LocalDir::open(&svc.dir.path().join("evidence")).unwrap(),
    );
    let removed = custos_evidence_custody::checkpoint::expire_uploads(
        &svc.db,
        &content_store,
        time::Duration::seconds(-1),
    )
    .await
    .unwrap();
    assert_eq!(
        removed, 2,
        "the abandoned upload, and the finalised one's record"
    );
    assert_eq!(
        svc.stored_files(),
        [format!("objects/sha256/{}/{digest}", &digest[..2])]
    );
    let gone = responder
        .get_upload(pb::GetUploadRequest {
            upload_id: abandoned.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&gone), "UPLOAD_NOT_FOUND");
}

async fn changed_content_ends_the_download_with_data_loss_and_is_recorded(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    let content = bytes(600_000);
    upload(&mut responder, &item.id, &content, "", 65_536)
        .await
        .unwrap();
    // Someone with access to the disk changes one byte.
    let digest = sha256(&content);
    let path = svc
        .dir
        .path()
        .join("evidence/objects/sha256")
        .join(&digest[..2])
        .join(&digest);
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    let mut changed = content.clone();
    changed[300_000] ^= 1;
    std::fs::write(&path, &changed).unwrap();

    let (status, received) = download(&mut responder, &item.id).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status)),
        (Code::DataLoss, "CONTENT_CORRUPT".into())
    );
    assert_eq!(received.len(), content.len());
    let verdict = responder
        .verify_chain(pb::VerifyChainRequest {
            item_id: item.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!verdict.verified);
    assert!(!verdict.content_verified);
    assert!(verdict.first_problem.unwrap().description.contains(&digest));
    let recorded = actions(&mut responder, &item.id).await;
    assert_eq!(
        recorded
            .iter()
            .filter(|a| **a == pb::CustodyAction::IntegrityFailed)
            .count(),
        2,
        "{recorded:?}"
    );
}

async fn a_silent_upload_is_abandoned(backend: Backend) {
    // The server's call limit (1 s) is shorter than the upload's idle limit (2 s): a
    // silent upload is let go by the idle limit, which shows that the call limit does
    // not apply to uploads (it would have ended the call first, with another reason).
    let dir = tempfile::tempdir().unwrap();
    let mut s = crate::common::settings(dir.path(), crate::common::NOWHERE);
    s.upload_idle_secs = 2;
    let svc = TestCustody::start_with(backend, dir, s, |c| c.server.request_timeout_secs = 1).await;
    svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();

    // A client that starts and then says nothing is let go.
    let other = register(&mut responder, "INC-2026-000001").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::UploadContentRequest>(1);
    tx.send(pb::UploadContentRequest {
        part: Some(pb::upload_content_request::Part::Start(pb::UploadStart {
            item_id: other.id.clone(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let status = responder
        .upload_content(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status)),
        (Code::DeadlineExceeded, "UPLOAD_IDLE".into())
    );
    drop(tx);
}

on_both_backends!(
    a_silent_upload_is_abandoned,
    a_streamed_upload_is_hashed_kept_and_downloaded_verified,
    a_digest_mismatch_or_an_interrupted_upload_keeps_nothing,
    the_chunked_path_resumes_and_finalises,
    changed_content_ends_the_download_with_data_loss_and_is_recorded,
);
