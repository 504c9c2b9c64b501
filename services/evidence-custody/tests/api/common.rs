//! Starting evidence custody for a test, giving it incidents and access lists, and
//! building its requests.

use custos_evidence_custody::{Config, Custody, CustodySettings, config::StorageSettings, store};
use custos_kit::{auth::Role, client::ClientInterceptor, service::App, storage::Db};
use custos_proto::custody::v1::{self as pb, custody_service_client::CustodyServiceClient};
use custos_testing::{Backend, Running, TestDatabase};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

pub type Client = CustodyServiceClient<InterceptedService<Channel, ClientInterceptor>>;

/// Where custody looks for classification when a test gives incidents directly:
/// nothing listens there, so its consumer keeps retrying quietly.
pub const NOWHERE: &str = "http://127.0.0.1:1";

/// The people of the tests: an officer and a responder on the incident's access list,
/// an outsider, and internal audit (by role).
pub const OFFICER: &str = "olivia";
pub const RESPONDER: &str = "rhys";
pub const OUTSIDER: &str = "oscar";
pub const AUDITOR: &str = "audrey";

pub struct TestCustody {
    pub running: Running,
    pub db: Db,
    pub _database: TestDatabase,
    pub dir: tempfile::TempDir,
}

pub fn settings(dir: &std::path::Path, classification_url: &str) -> CustodySettings {
    let key = dir.join("signing-key.pem");
    if !key.exists() {
        custos_evidence_custody::signing::Signer::load(&key, true).unwrap();
    }
    CustodySettings {
        classification_url: Some(classification_url.into()),
        storage: StorageSettings {
            dir: Some(dir.join("evidence")),
            s3: None,
        },
        signing_key_file: Some(key),
        // Tests sign checkpoints themselves (`sign`), when they want one.
        checkpoint_interval_secs: 86_400,
        ..CustodySettings::default()
    }
}

impl TestCustody {
    pub async fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), NOWHERE);
        Self::start_with(backend, dir, s, |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        dir: tempfile::TempDir,
        settings: CustodySettings,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let database = TestDatabase::new(backend).await;
        let mut config: Config = custos_testing::config(&database, settings);
        adjust(&mut config);
        let app = App::build::<Custody>(config).await.expect("custody starts");
        let db = app.db().clone();
        let running = Running::spawn(app.local_addr(), |signal| app.run_until(signal));
        Self {
            running,
            db,
            _database: database,
            dir,
        }
    }

    pub fn client(&self, subject: &str, roles: &[Role]) -> Client {
        CustodyServiceClient::new(custos_testing::authed(self.running.addr, subject, roles))
            .max_decoding_message_size(8 * 1024 * 1024)
    }

    pub fn officer(&self) -> Client {
        self.client(OFFICER, &[Role::IncidentOfficer])
    }

    pub fn responder(&self) -> Client {
        self.client(RESPONDER, &[Role::Responder])
    }

    pub fn outsider(&self) -> Client {
        self.client(OUTSIDER, &[Role::Responder, Role::SecurityAdvisor])
    }

    pub fn auditor(&self) -> Client {
        self.client(AUDITOR, &[Role::InternalAudit])
    }

    /// An incident as classification's feed would give it: the officer and the
    /// responder on its access list. Returns its id.
    pub async fn incident(&self, reference: &str) -> Uuid {
        let id = Uuid::now_v7();
        let mut tx = self.db.begin().await.unwrap();
        store::declare_incident(&mut tx, id, reference, true)
            .await
            .unwrap();
        store::set_officer(&mut tx, id, OFFICER, 2).await.unwrap();
        store::set_access(&mut tx, id, OFFICER, true, 1)
            .await
            .unwrap();
        store::set_access(&mut tx, id, RESPONDER, true, 2)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// A service with the usual incident (INC-2026-000001), its responder, and one item
    /// the responder registered.
    pub async fn with_item(backend: Backend) -> (Self, Client, pb::EvidenceItem) {
        let svc = Self::start(backend).await;
        svc.incident("INC-2026-000001").await;
        let mut responder = svc.responder();
        let item = register(&mut responder, "INC-2026-000001").await;
        (svc, responder, item)
    }

    /// The service's signing key, as its file holds it.
    pub fn signer(&self) -> custos_evidence_custody::signing::Signer {
        custos_evidence_custody::signing::Signer::load(
            &self.dir.path().join("signing-key.pem"),
            false,
        )
        .unwrap()
    }

    /// Signs a checkpoint over the log as it is now.
    pub async fn sign(&self) -> store::CheckpointRow {
        let signer = self.signer();
        custos_evidence_custody::checkpoint::sign(&self.db, &signer)
            .await
            .expect("a checkpoint is signed")
            .expect("the log grew")
    }

    /// Files under the evidence directory (relative paths), sorted.
    pub fn stored_files(&self) -> Vec<String> {
        let root = self.dir.path().join("evidence");
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

pub fn collection() -> pb::Collection {
    pb::Collection {
        found_at: "Finance office, desk 4".into(),
        collected_by: "Rhys Evans".into(),
        collected_at: Some(custos_proto::prost_types::Timestamp {
            seconds: 1_780_000_000,
            nanos: 0,
        }),
        time_zone: "Europe/London".into(),
        method: "dd image through a write blocker".into(),
        volatility: "powered off before imaging".into(),
    }
}

pub fn registration(incident: &str) -> pb::RegisterEvidenceRequest {
    pb::RegisterEvidenceRequest {
        incident_id: incident.into(),
        kind: pb::EvidenceKind::File as i32,
        description: "Disk image of the finance laptop".into(),
        collection: Some(collection()),
        custodian: "Rhys Evans".into(),
        storage_location: "Evidence safe 2".into(),
        derived_from_item_id: String::new(),
        idempotency_key: Uuid::new_v4().to_string(),
    }
}

/// Registers an item of the incident and returns it.
pub async fn register(client: &mut Client, incident: &str) -> pb::EvidenceItem {
    client
        .register_evidence(registration(incident))
        .await
        .expect("evidence registered")
        .into_inner()
        .item
        .unwrap()
}

/// Uploads `bytes` as the item's content in `chunk`-sized messages.
pub async fn upload(
    client: &mut Client,
    item_id: &str,
    bytes: &[u8],
    expected: &str,
    chunk: usize,
) -> Result<pb::EvidenceItem, tonic::Status> {
    let mut messages = vec![pb::UploadContentRequest {
        part: Some(pb::upload_content_request::Part::Start(pb::UploadStart {
            item_id: item_id.into(),
            expected_sha256: expected.into(),
            file_name: "laptop.dd".into(),
            reason: "imaged on site".into(),
        })),
    }];
    for piece in bytes.chunks(chunk.max(1)) {
        messages.push(pb::UploadContentRequest {
            part: Some(pb::upload_content_request::Part::Chunk(piece.to_vec())),
        });
    }
    client
        .upload_content(futures_util::stream::iter(messages))
        .await
        .map(|r| r.into_inner().item.unwrap())
}

/// Downloads an item's content: the bytes, or the status the stream ended with (and
/// the bytes that came before it).
pub async fn download(
    client: &mut Client,
    item_id: &str,
) -> Result<Vec<u8>, (tonic::Status, Vec<u8>)> {
    let mut stream = client
        .download_content(pb::DownloadContentRequest {
            item_id: item_id.into(),
            reason: "examination".into(),
        })
        .await
        .map_err(|s| (s, Vec::new()))?
        .into_inner();
    let mut out = Vec::new();
    let mut first = true;
    loop {
        match stream.message().await {
            Ok(Some(m)) => match m.part {
                Some(pb::download_content_response::Part::Info(_)) => {
                    assert!(first, "info comes first")
                }
                Some(pb::download_content_response::Part::Chunk(b)) => out.extend_from_slice(&b),
                None => panic!("an empty message"),
            },
            Ok(None) => return Ok(out),
            Err(s) => return Err((s, out)),
        }
        first = false;
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(bytes))
}

/// Bytes that are not all alike.
pub fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// The field paths a status's BadRequest names.
pub fn fields(status: &tonic::Status) -> Vec<String> {
    custos_kit::error::status_violations(status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}

pub fn reason(status: &tonic::Status) -> String {
    custos_kit::error::status_reason(status)
        .map(|(r, d)| {
            assert_eq!(d, "custody.custos");
            r
        })
        .unwrap_or_default()
}

/// The actions of an item's chain, in order.
pub async fn actions(client: &mut Client, item_id: &str) -> Vec<pb::CustodyAction> {
    let entries = client
        .list_custody_entries(pb::ListCustodyEntriesRequest {
            item_id: item_id.into(),
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    entries.iter().map(|e| e.action()).collect()
}

/// Runs statements on the service's database as its owner (what someone with the
/// database's credentials could do, bypassing the service).
pub async fn raw(db: &Db, statements: &[&str]) {
    let mut tx = db.begin().await.unwrap();
    for s in statements {
        custos_kit::with_conn!(&mut tx, c => {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string())).execute(&mut *c).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        });
    }
    tx.commit().await.unwrap();
}

/// Runs a statement and returns the database's error, if any.
pub async fn raw_result(db: &Db, statement: &str) -> Result<(), String> {
    let mut tx = db.begin().await.unwrap();
    let r = custos_kit::with_conn!(&mut tx, c => {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string())).execute(&mut *c).await.map(|_| ()).map_err(|e| e.to_string())
    });
    if r.is_ok() {
        tx.commit().await.unwrap();
    }
    r
}
