//! The gRPC surface of evidence custody. Each handler authenticates the caller, parses
//! the request into domain values, checks need to know, and records every read in the
//! item's chain before it returns anything.

mod chain;
mod content;
mod items;
mod uploads;
mod verbs;

pub(crate) use chain::checkpoint_to_wire;

use std::sync::Arc;

use custos_kit::{
    auth::{Principal, Role},
    error::Violations,
    storage::{AsConn, DbTime, Tx},
    time_fmt::to_timestamp,
};
use custos_proto::custody::v1 as pb;
use uuid::Uuid;

use crate::{
    chain::{
        GENESIS, Problem, Record, StoredEntry, compare_record, hex, replay, verify_item_chain,
    },
    content::ContentStore,
    error::CustodyError,
    evidence::Action,
    signing::Signer,
    store::{self, IncidentRow, ItemRow, NewEntry},
};

/// Roles that see every item, whatever the access lists say: internal audit, who guide
/// the collection of evidence (14.2.1).
pub const SEE_ALL: &[Role] = &[Role::InternalAudit];

/// Roles that may follow custody's event feed: the services built on it.
pub const FEED: &[Role] = &[Role::Service];

/// The service's handlers and what they share.
#[derive(Debug, Clone)]
pub struct CustodyApi {
    db: custos_kit::storage::Db,
    store: ContentStore,
    signer: Arc<Signer>,
    /// How long a streamed upload may go without a message.
    upload_idle: std::time::Duration,
}

impl CustodyApi {
    pub fn new(
        db: custos_kit::storage::Db,
        store: ContentStore,
        signer: Arc<Signer>,
        upload_idle: std::time::Duration,
    ) -> Self {
        Self {
            db,
            store,
            signer,
            upload_idle,
        }
    }
}

/// An item named by id or by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemRef {
    Id(Uuid),
    Reference(String),
}

/// An id or a reference (`EVD-2026-000042`), or a violation naming the field.
pub(crate) fn parse_ref(
    v: &mut Violations,
    field: &str,
    raw: &str,
    example: &str,
) -> Option<ItemRef> {
    let raw = raw.trim();
    if raw.is_empty() {
        v.add(field, "is required");
        return None;
    }
    if let Ok(id) = Uuid::try_parse(raw) {
        return Some(ItemRef::Id(id));
    }
    if raw.len() <= 40 && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Some(ItemRef::Reference(raw.to_owned()));
    }
    v.add(
        field,
        format!("must be an id (a UUID) or a reference (e.g. {example})"),
    );
    None
}

pub(crate) const ITEM_EXAMPLE: &str = "EVD-2026-000042";
pub(crate) const INCIDENT_EXAMPLE: &str = "INC-2026-000017";

/// Whether the caller sees the incident's evidence.
pub(crate) async fn sees(
    conn: impl AsConn,
    caller: &Principal,
    incident_id: Uuid,
) -> Result<bool, CustodyError> {
    if caller.has_any(SEE_ALL) {
        return Ok(true);
    }
    Ok(store::can_see(conn, incident_id, &caller.subject).await?)
}

/// An incident the caller sees; INCIDENT_NOT_FOUND for one unknown or not theirs.
pub(crate) async fn visible_incident(
    mut conn: impl AsConn,
    caller: &Principal,
    r: &ItemRef,
) -> Result<IncidentRow, CustodyError> {
    let row = match r {
        ItemRef::Id(id) => store::incident(&mut conn, *id).await?,
        ItemRef::Reference(reference) => store::incident_by_reference(&mut conn, reference).await?,
    }
    .ok_or(CustodyError::IncidentNotFound)?;
    if !sees(&mut conn, caller, row.id).await? {
        return Err(CustodyError::IncidentNotFound);
    }
    Ok(row)
}

/// An item the caller sees, with its incident; ITEM_NOT_FOUND for one that does not
/// exist or that they may not see.
pub(crate) async fn visible_item(
    mut conn: impl AsConn,
    caller: &Principal,
    r: &ItemRef,
) -> Result<(ItemRow, IncidentRow), CustodyError> {
    let item = match r {
        ItemRef::Id(id) => store::item(&mut conn, *id).await?,
        ItemRef::Reference(reference) => store::item_by_reference(&mut conn, reference).await?,
    }
    .ok_or(CustodyError::ItemNotFound)?;
    if !sees(&mut conn, caller, item.incident_id).await? {
        return Err(CustodyError::ItemNotFound);
    }
    let incident = store::incident(&mut conn, item.incident_id)
        .await?
        .ok_or_else(|| {
            CustodyError::Storage(custos_kit::storage::StorageError::Corrupt(format!(
                "item {} names incident {} that is not known",
                item.id, item.incident_id
            )))
        })?;
    Ok((item, incident))
}

/// The same item again, locked in the caller's transaction, still visible.
pub(crate) async fn hold_visible(
    tx: &mut Tx,
    caller: &Principal,
    id: Uuid,
) -> Result<ItemRow, CustodyError> {
    let item = store::hold_item(tx, id)
        .await?
        .ok_or(CustodyError::ItemNotFound)?;
    if !sees(&mut *tx, caller, item.incident_id).await? {
        return Err(CustodyError::ItemNotFound);
    }
    Ok(item)
}

/// An item's chain verified and its record compared with what the chain says: its
/// entries and the first problem.
pub(crate) async fn check_item(
    conn: impl AsConn,
    item: &ItemRow,
    incident: &IncidentRow,
    signer: &Signer,
) -> Result<(Vec<StoredEntry>, Option<Problem>), CustodyError> {
    // The log's size first, then the row again: every entry below that size committed
    // before the row was read, so the row counts it; entries past the row's count are
    // newer reads only if they lie at or beyond that size.
    let mut conn = conn;
    let size = store::log_size(&mut conn).await?;
    let item = &store::item(&mut conn, item.id)
        .await?
        .ok_or(CustodyError::ItemNotFound)?;
    let mut entries = store::entries_of(&mut conn, item.id, 0, None).await?;
    let counted = usize::try_from(item.entry_count).unwrap_or(usize::MAX);
    let uncounted = entries
        .iter()
        .skip(counted)
        .find(|e| e.log_index < size)
        .map(|e| Problem {
            sequence: e.sequence,
            log_index: e.log_index,
            description: format!(
                "entry {} is not counted by the item's record, which stops at entry {}: the record was changed to hide it",
                e.sequence, item.entry_count
            ),
        });
    entries.truncate(counted);
    if let Some(p) = uncounted {
        return Ok((entries, Some(p)));
    }
    let key = signer.public_key();
    let problem = verify_item_chain(item.id, &entries, item.entry_count, &item.head_hash, &key)
        .or_else(|| {
            compare_record(
                &replay(&entries),
                &Record {
                    incident_reference: &incident.reference,
                    content: item.content_sha256.as_deref().map(|sha| {
                        (
                            sha,
                            item.content_file_name.as_deref().unwrap_or_default(),
                            item.content_added_by.as_deref().unwrap_or_default(),
                        )
                    }),
                    state: item.state,
                    hold_reason: item.hold.as_ref().map(|h| h.0.reason.as_str()),
                    custodian: &item.custodian,
                    storage_location: &item.storage_location,
                    content_added_at: item.content_added_at.map(DbTime::get),
                    hold_by: item.hold.as_ref().and_then(|h| {
                        crate::chain::parse_time(&h.0.placed_at)
                            .map(|t| (h.0.placed_by.as_str(), t))
                    }),
                },
            )
        });
    Ok((entries, problem))
}

/// Records a read of an item in its chain (in a transaction of its own, committed
/// before anything is returned) and returns the item as it is after the record.
pub(crate) async fn record_read(
    db: &custos_kit::storage::Db,
    signer: &Signer,
    caller: &Principal,
    id: Uuid,
    entry: impl FnOnce(DbTime) -> NewEntry,
) -> Result<ItemRow, CustodyError> {
    let mut tx = db.begin().await?;
    let mut item = hold_visible(&mut tx, caller, id).await?;
    store::append(&mut tx, &mut item, entry(DbTime::now()), signer)
        .await
        .map_err(|e| match e {
            // The next entry's place is taken: the record no longer counts its chain.
            custos_kit::storage::StorageError::Conflict { .. } => CustodyError::ChainBroken {
                reference: item.reference.clone(),
                description: "the item's record does not count every entry of its chain".into(),
            },
            e => e.into(),
        })?;
    store::save_item(&mut tx, &item).await?;
    tx.commit().await?;
    Ok(item)
}

/// An ACCESSED entry.
pub(crate) fn accessed(
    caller: &Principal,
    what: &str,
    reason: &str,
) -> impl FnOnce(DbTime) -> NewEntry {
    let actor = caller.subject.clone();
    let what = what.to_owned();
    let reason = reason.to_owned();
    move |at| NewEntry::new(Action::Accessed, &actor, &reason, at).with("read", what)
}

/// The head of a chain with no entries yet.
pub(crate) fn genesis_head() -> String {
    hex(&GENESIS)
}

fn opt_time(t: Option<DbTime>) -> Option<custos_proto::prost_types::Timestamp> {
    t.map(|t| to_timestamp(t.get()))
}

/// The item as the API shows it.
pub(crate) fn item_to_wire(row: &ItemRow, incident: &IncidentRow) -> pb::EvidenceItem {
    let c = &row.collection.0;
    pb::EvidenceItem {
        id: row.id.to_string(),
        reference: row.reference.clone(),
        incident_id: row.incident_id.to_string(),
        incident_reference: incident.reference.clone(),
        kind: row.kind.to_wire(),
        description: row.description.clone(),
        collection: Some(pb::Collection {
            found_at: c.found_at.clone(),
            collected_by: c.collected_by.clone(),
            collected_at: time::OffsetDateTime::parse(
                &c.collected_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
            .map(to_timestamp),
            time_zone: c.time_zone.clone(),
            method: c.method.clone(),
            volatility: c.volatility.clone(),
        }),
        custodian: row.custodian.clone(),
        storage_location: row.storage_location.clone(),
        state: row.state.to_wire(),
        legal_hold: row.hold.as_ref().map(|h| pb::LegalHold {
            reason: h.0.reason.clone(),
            placed_by: h.0.placed_by.clone(),
            placed_at: time::OffsetDateTime::parse(
                &h.0.placed_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
            .map(to_timestamp),
        }),
        content: row.content_sha256.as_ref().map(|sha| pb::Content {
            sha256: sha.clone(),
            size_bytes: row.content_size.unwrap_or_default(),
            file_name: row.content_file_name.clone().unwrap_or_default(),
            added_at: opt_time(row.content_added_at),
            added_by: row.content_added_by.clone().unwrap_or_default(),
        }),
        derived_from: row.parent_item_id.map(|p| pb::Derivation {
            parent_item_id: p.to_string(),
            parent_reference: row.parent_reference.clone().unwrap_or_default(),
            parent_sha256: row.parent_sha256.clone().unwrap_or_default(),
        }),
        incident_evidence_required: incident.evidence_required,
        registered_by: row.registered_by.clone(),
        registered_at: Some(to_timestamp(row.registered_at.get())),
        revision: row.revision,
        custody_entry_count: row.entry_count,
    }
}

/// RFC 3339 text of an instant, as stored in JSON values.
pub(crate) fn rfc3339(at: DbTime) -> String {
    at.get()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats")
}

/// The calls `server.request_timeout_secs` does not limit: uploads take as long as
/// their bytes take.
pub const LONG_RUNNING: &[&str] = &[
    "/custos.custody.v1.CustodyService/UploadContent",
    // It re-hashes the whole content, which takes as long as the content is large.
    "/custos.custody.v1.CustodyService/VerifyChain",
];

type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

#[tonic::async_trait]
impl pb::custody_service_server::CustodyService for CustodyApi {
    async fn register_evidence(
        &self,
        r: tonic::Request<pb::RegisterEvidenceRequest>,
    ) -> Reply<pb::RegisterEvidenceResponse> {
        CustodyApi::register_evidence(self, r).await
    }

    async fn get_evidence(
        &self,
        r: tonic::Request<pb::GetEvidenceRequest>,
    ) -> Reply<pb::GetEvidenceResponse> {
        CustodyApi::get_evidence(self, r).await
    }

    async fn list_evidence(
        &self,
        r: tonic::Request<pb::ListEvidenceRequest>,
    ) -> Reply<pb::ListEvidenceResponse> {
        CustodyApi::list_evidence(self, r).await
    }

    async fn upload_content(
        &self,
        r: tonic::Request<tonic::Streaming<pb::UploadContentRequest>>,
    ) -> Reply<pb::UploadContentResponse> {
        CustodyApi::upload_content(self, r).await
    }

    async fn create_upload(
        &self,
        r: tonic::Request<pb::CreateUploadRequest>,
    ) -> Reply<pb::CreateUploadResponse> {
        CustodyApi::create_upload(self, r).await
    }

    async fn write_upload(
        &self,
        r: tonic::Request<pb::WriteUploadRequest>,
    ) -> Reply<pb::WriteUploadResponse> {
        CustodyApi::write_upload(self, r).await
    }

    async fn get_upload(
        &self,
        r: tonic::Request<pb::GetUploadRequest>,
    ) -> Reply<pb::GetUploadResponse> {
        CustodyApi::get_upload(self, r).await
    }

    async fn finalize_upload(
        &self,
        r: tonic::Request<pb::FinalizeUploadRequest>,
    ) -> Reply<pb::FinalizeUploadResponse> {
        CustodyApi::finalize_upload(self, r).await
    }

    type DownloadContentStream = content::DownloadStream;

    async fn download_content(
        &self,
        r: tonic::Request<pb::DownloadContentRequest>,
    ) -> Reply<Self::DownloadContentStream> {
        CustodyApi::download_content(self, r).await
    }

    async fn transfer_custody(
        &self,
        r: tonic::Request<pb::TransferCustodyRequest>,
    ) -> Reply<pb::TransferCustodyResponse> {
        CustodyApi::transfer_custody(self, r).await
    }

    async fn record_examination(
        &self,
        r: tonic::Request<pb::RecordExaminationRequest>,
    ) -> Reply<pb::RecordExaminationResponse> {
        CustodyApi::record_examination(self, r).await
    }

    async fn seal_evidence(
        &self,
        r: tonic::Request<pb::SealEvidenceRequest>,
    ) -> Reply<pb::SealEvidenceResponse> {
        CustodyApi::seal_evidence(self, r).await
    }

    async fn unseal_evidence(
        &self,
        r: tonic::Request<pb::UnsealEvidenceRequest>,
    ) -> Reply<pb::UnsealEvidenceResponse> {
        CustodyApi::unseal_evidence(self, r).await
    }

    async fn place_legal_hold(
        &self,
        r: tonic::Request<pb::PlaceLegalHoldRequest>,
    ) -> Reply<pb::PlaceLegalHoldResponse> {
        CustodyApi::place_legal_hold(self, r).await
    }

    async fn lift_legal_hold(
        &self,
        r: tonic::Request<pb::LiftLegalHoldRequest>,
    ) -> Reply<pb::LiftLegalHoldResponse> {
        CustodyApi::lift_legal_hold(self, r).await
    }

    async fn release_evidence(
        &self,
        r: tonic::Request<pb::ReleaseEvidenceRequest>,
    ) -> Reply<pb::ReleaseEvidenceResponse> {
        CustodyApi::release_evidence(self, r).await
    }

    async fn dispose_evidence(
        &self,
        r: tonic::Request<pb::DisposeEvidenceRequest>,
    ) -> Reply<pb::DisposeEvidenceResponse> {
        CustodyApi::dispose_evidence(self, r).await
    }

    async fn list_custody_entries(
        &self,
        r: tonic::Request<pb::ListCustodyEntriesRequest>,
    ) -> Reply<pb::ListCustodyEntriesResponse> {
        CustodyApi::list_custody_entries(self, r).await
    }

    async fn verify_chain(
        &self,
        r: tonic::Request<pb::VerifyChainRequest>,
    ) -> Reply<pb::VerifyChainResponse> {
        CustodyApi::verify_chain(self, r).await
    }

    async fn get_custody_report(
        &self,
        r: tonic::Request<pb::GetCustodyReportRequest>,
    ) -> Reply<pb::GetCustodyReportResponse> {
        CustodyApi::get_custody_report(self, r).await
    }

    async fn get_checkpoint(
        &self,
        r: tonic::Request<pb::GetCheckpointRequest>,
    ) -> Reply<pb::GetCheckpointResponse> {
        CustodyApi::get_checkpoint(self, r).await
    }
}
