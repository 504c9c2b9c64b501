//! `evidence`: evidence-custody's content path, as a client sees it. Gives the service an
//! incident (in its database, as classification's feed would), registers an item,
//! uploads `--file` as its content (1 MiB messages read by a thread of their own, the
//! digest sent first so that the service checks it), then downloads it (re-verified by
//! the service as it reads) and throws the bytes away; prints each one's time and rate.

use std::{io::Read, time::Instant};

use custos_evidence_custody::{Custody, store};
use custos_kit::{
    client::ClientInterceptor, config::DatabaseConfig, service::Service, storage::Db,
};
use custos_proto::custody::v1::{self as pb, custody_service_client::CustodyServiceClient};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct EvidenceArgs {
    /// The evidence-custody service.
    #[arg(long, default_value = "http://127.0.0.1:50054")]
    server: String,
    /// Its database (to give it the incident the item belongs to).
    #[arg(long)]
    database_url: String,
    /// A bearer token; its subject is put on the incident's access list.
    #[arg(long, env = "CUSTOS_TOKEN")]
    token: String,
    /// The token's subject.
    #[arg(long, default_value = "bench")]
    subject: String,
    /// The file to upload.
    #[arg(long)]
    file: std::path::PathBuf,
    /// Its SHA-256 (hexadecimal), as `sha256sum` printed it.
    #[arg(long)]
    sha256: String,
    #[arg(long)]
    json: bool,
}

const PIECE: usize = 1024 * 1024;

pub async fn run(args: EvidenceArgs) -> Result<(), String> {
    let size = std::fs::metadata(&args.file)
        .map_err(|e| format!("{}: {e}", args.file.display()))?
        .len();
    // The incident, as classification's feed would have given it.
    let db = Db::connect(
        &DatabaseConfig {
            url: args.database_url.clone().into(),
            ..DatabaseConfig::default()
        },
        Custody::NAME,
        Custody::migrations(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let incident = Uuid::now_v7();
    // (A version 7 id begins with the time: its random end names the incident.)
    let id = incident.simple().to_string();
    let reference = format!("INC-BENCH-{}", &id[id.len() - 8..]);
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    store::declare_incident(&mut tx, incident, &reference, true)
        .await
        .map_err(|e| e.to_string())?;
    store::set_access(&mut tx, incident, &args.subject, true, 1)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    db.close().await;

    let channel = Channel::from_shared(args.server.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", args.server))?;
    let mut client = CustodyServiceClient::new(InterceptedService::new(
        channel,
        ClientInterceptor::bearer(&args.token)?,
    ))
    .max_decoding_message_size(8 * 1024 * 1024);
    let item = client
        .register_evidence(pb::RegisterEvidenceRequest {
            incident_id: reference,
            kind: pb::EvidenceKind::File as i32,
            description: "benchmark image".into(),
            collection: Some(pb::Collection {
                found_at: "bench".into(),
                collected_by: "bench".into(),
                collected_at: Some(custos_kit::time_fmt::to_timestamp(
                    time::OffsetDateTime::now_utc(),
                )),
                time_zone: "UTC".into(),
                method: "generated".into(),
                volatility: String::new(),
            }),
            custodian: "bench".into(),
            storage_location: "bench".into(),
            derived_from_item_id: String::new(),
            idempotency_key: Uuid::new_v4().to_string(),
        })
        .await
        .map_err(|s| s.to_string())?
        .into_inner()
        .item
        .ok_or("no item")?;

    // Upload: a thread reads the file ahead (as `custos custody upload` does).
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let file = args.file.clone();
    std::thread::spawn(move || {
        let mut f = std::fs::File::open(&file).expect("the file opens");
        loop {
            let mut buf = vec![0u8; PIECE];
            let mut filled = 0;
            while filled < PIECE {
                match f.read(&mut buf[filled..]).expect("the file reads") {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.blocking_send(buf).is_err() {
                return;
            }
        }
    });
    let start = pb::UploadContentRequest {
        part: Some(pb::upload_content_request::Part::Start(pb::UploadStart {
            item_id: item.id.clone(),
            expected_sha256: args.sha256.clone(),
            file_name: "bench.bin".into(),
            reason: "benchmark".into(),
        })),
    };
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| {
            (
                pb::UploadContentRequest {
                    part: Some(pb::upload_content_request::Part::Chunk(bytes)),
                },
                rx,
            )
        })
    });
    let began = Instant::now();
    let added = client
        .upload_content(futures_util::StreamExt::chain(
            futures_util::stream::once(async move { start }),
            chunks,
        ))
        .await
        .map_err(|s| s.to_string())?
        .into_inner()
        .item
        .ok_or("no item")?;
    let upload = began.elapsed().as_secs_f64();
    let content = added.content.ok_or("no content")?;
    if content.sha256 != args.sha256 || u64::try_from(content.size_bytes).ok() != Some(size) {
        return Err(format!(
            "the service kept {} bytes with SHA-256 {}",
            content.size_bytes, content.sha256
        ));
    }

    let began = Instant::now();
    let mut stream = client
        .download_content(pb::DownloadContentRequest {
            item_id: item.id.clone(),
            reason: "benchmark".into(),
        })
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    let mut received: u64 = 0;
    while let Some(m) = stream.message().await.map_err(|s| s.to_string())? {
        if let Some(pb::download_content_response::Part::Chunk(b)) = m.part {
            received += b.len() as u64;
        }
    }
    let download = began.elapsed().as_secs_f64();
    if received != size {
        return Err(format!("downloaded {received} bytes of {size}"));
    }
    let mib = size as f64 / (1024.0 * 1024.0);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"bytes": size, "upload_secs": upload, "download_secs": download,
                "upload_mib_s": mib / upload, "download_mib_s": mib / download})
        );
    } else {
        println!(
            "{mib:.0} MiB: upload {upload:.2} s ({:.0} MiB/s, hashed, synced, recorded), download {download:.2} s ({:.0} MiB/s, re-verified)",
            mib / upload,
            mib / download
        );
    }
    Ok(())
}
