//! The verbs that move an item through custody: transfer, examine, seal, unseal, hold,
//! lift, release, dispose. Each sends the revision it read and an idempotency key, and
//! appends one entry to the item's chain in the transaction of its change.

use custos_kit::{
    auth::{Principal, Role, require_authenticated},
    error::{Violations, text},
    idempotency::{self, Claim, Key},
    storage::{DbTime, JsonText, StorageError},
};
use custos_proto::custody::v1 as pb;
use prost::Message;
use tonic::{Request, Response, Status};

use super::{
    CustodyApi, ITEM_EXAMPLE, ItemRef, hold_visible, item_to_wire, items::line, parse_ref, rfc3339,
    visible_item,
};
use crate::{
    error::CustodyError,
    evidence::{Action, Hold, ItemState},
    store::{self, IncidentRow, ItemRow, NewEntry},
};

const PARAGRAPH: usize = 2_000;

/// Roles that may hold, lift, release and dispose of any item (besides the incident's
/// officer).
pub const DISPOSITION: &[Role] = &[Role::InternalAudit];

/// The verbs allowed on an item as it is.
pub(crate) fn allowed(item: &ItemRow) -> Vec<&'static str> {
    let on_hold = item.hold.is_some();
    let mut out = Vec::new();
    match item.state {
        ItemState::InCustody => {
            out.extend(["TransferCustody", "RecordExamination", "SealEvidence"])
        }
        ItemState::Sealed => out.extend(["TransferCustody", "UnsealEvidence"]),
        ItemState::Released | ItemState::Disposed => return out,
    }
    if on_hold {
        out.push("LiftLegalHold");
    } else {
        out.extend(["PlaceLegalHold", "ReleaseEvidence", "DisposeEvidence"]);
    }
    out
}

fn state_name(item: &ItemRow) -> &'static str {
    match item.state {
        ItemState::InCustody => "in custody",
        ItemState::Sealed => "sealed",
        ItemState::Released => "released",
        ItemState::Disposed => "disposed of",
    }
}

/// Refuses `action` unless it is allowed now (a legal hold refuses release and
/// disposal with LEGAL_HOLD, naming the hold).
fn require(item: &ItemRow, action: &'static str) -> Result<(), CustodyError> {
    if matches!(action, "ReleaseEvidence" | "DisposeEvidence")
        && !item.state.is_final()
        && let Some(hold) = &item.hold
    {
        return Err(CustodyError::LegalHold {
            reason: hold.0.reason.clone(),
        });
    }
    if allowed(item).contains(&action) {
        return Ok(());
    }
    let state = if item.hold.is_some() && !item.state.is_final() && action == "PlaceLegalHold" {
        "on legal hold"
    } else if action == "LiftLegalHold" && item.hold.is_none() && !item.state.is_final() {
        "not on legal hold"
    } else {
        state_name(item)
    };
    Err(CustodyError::IllegalTransition {
        action,
        state,
        allowed: allowed(item),
    })
}

/// Holding, lifting, releasing and disposing take the incident's officer or internal
/// audit.
fn require_disposition(caller: &Principal, incident: &IncidentRow) -> Result<(), CustodyError> {
    if caller.has_any(DISPOSITION)
        || (!incident.officer.is_empty() && incident.officer == caller.subject)
    {
        Ok(())
    } else {
        Err(CustodyError::NotAuthorised(
            "only the incident's responsible officer or internal audit may do this",
        ))
    }
}

/// What every verb's request has.
struct Common {
    item: Option<ItemRef>,
    revision: i32,
    key: String,
}

fn common(v: &mut Violations, item_id: &str, revision: i32, key: &str) -> Common {
    let item = parse_ref(v, "item_id", item_id, ITEM_EXAMPLE);
    if revision <= 0 {
        v.add("revision", "is required (the item's revision as read)");
    }
    idempotency::check(v, "idempotency_key", key, true);
    Common {
        item,
        revision,
        key: key.to_owned(),
    }
}

impl CustodyApi {
    /// Runs a verb: the item held and still visible, at the revision read, changed by
    /// `apply` (which returns the chain entry), saved at the next revision.
    async fn verb<D: std::fmt::Debug>(
        &self,
        caller: &Principal,
        method: &'static str,
        c: Common,
        values: &D,
        apply: impl FnOnce(&mut ItemRow, &IncidentRow, DbTime) -> Result<NewEntry, CustodyError>,
    ) -> Result<pb::EvidenceItem, CustodyError> {
        let key = Key::new(&caller.subject, method, &c.key);
        let fingerprint = idempotency::fingerprint(&(c.item.clone(), c.revision, values));
        let mut tx = self.db.begin().await?;
        let pending = match idempotency::claim(&mut tx, &key, &fingerprint).await? {
            Claim::Replay(bytes) => {
                let item = pb::EvidenceItem::decode(bytes.as_slice())
                    .map_err(|e| CustodyError::Storage(StorageError::Corrupt(e.to_string())))?;
                // A replay answers only someone who may still see the item.
                let incident = uuid::Uuid::try_parse(&item.incident_id).unwrap_or_default();
                if !super::sees(&mut tx, caller, incident).await? {
                    return Err(CustodyError::ItemNotFound);
                }
                return Ok(item);
            }
            Claim::New(pending) => pending,
        };
        let (found, incident) = visible_item(&mut tx, caller, &c.item.expect("validated")).await?;
        let mut item = hold_visible(&mut tx, caller, found.id).await?;
        if item.revision != c.revision {
            return Err(CustodyError::ItemChanged {
                expected: c.revision,
                current: item.revision,
            });
        }
        let now = DbTime::now();
        let entry = apply(&mut item, &incident, now)?;
        item.revision += 1;
        store::append(&mut tx, &mut item, entry, &self.signer).await?;
        store::save_item(&mut tx, &item).await?;
        let wire = item_to_wire(&item, &incident);
        idempotency::complete(&mut tx, pending, &wire).await?;
        tx.commit().await?;
        tracing::info!(item_id = %item.id, reference = %item.reference, action = method, by = %caller.subject, "custody changed");
        Ok(wire)
    }

    pub(crate) async fn transfer_custody(
        &self,
        r: Request<pb::TransferCustodyRequest>,
    ) -> Result<Response<pb::TransferCustodyResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let c = common(&mut v, &req.item_id, req.revision, &req.idempotency_key);
        let to = line(&mut v, "to_custodian", &req.to_custodian, true);
        let purpose = text(&mut v, "purpose", &req.purpose, PARAGRAPH, true);
        let location = line(&mut v, "storage_location", &req.storage_location, true);
        v.finish().map_err(CustodyError::Invalid)?;
        let values = (to.clone(), purpose.clone(), location.clone());
        let item = self
            .verb(&caller, "TransferCustody", c, &values, |item, _, at| {
                require(item, "TransferCustody")?;
                let entry = NewEntry::new(Action::Transferred, &caller.subject, &purpose, at)
                    .with("from", item.custodian.clone())
                    .with("to", to.clone())
                    .with("purpose", purpose.clone())
                    .with("from_location", item.storage_location.clone())
                    .with("location", location.clone());
                item.custodian = to;
                item.storage_location = location;
                Ok(entry)
            })
            .await?;
        Ok(Response::new(pb::TransferCustodyResponse {
            item: Some(item),
        }))
    }

    pub(crate) async fn record_examination(
        &self,
        r: Request<pb::RecordExaminationRequest>,
    ) -> Result<Response<pb::RecordExaminationResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let c = common(&mut v, &req.item_id, req.revision, &req.idempotency_key);
        let method = text(&mut v, "method", &req.method, PARAGRAPH, true);
        let findings = text(&mut v, "findings", &req.findings, 10_000, true);
        v.finish().map_err(CustodyError::Invalid)?;
        let values = (method.clone(), findings.clone());
        let item = self
            .verb(&caller, "RecordExamination", c, &values, |item, _, at| {
                require(item, "RecordExamination")?;
                Ok(NewEntry::new(Action::Examined, &caller.subject, "", at)
                    .with("method", method)
                    .with("findings", findings))
            })
            .await?;
        Ok(Response::new(pb::RecordExaminationResponse {
            item: Some(item),
        }))
    }

    pub(crate) async fn seal_evidence(
        &self,
        r: Request<pb::SealEvidenceRequest>,
    ) -> Result<Response<pb::SealEvidenceResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let c = common(&mut v, &req.item_id, req.revision, &req.idempotency_key);
        let seal = line(&mut v, "seal", &req.seal, true);
        let reason = text(&mut v, "reason", &req.reason, PARAGRAPH, true);
        v.finish().map_err(CustodyError::Invalid)?;
        let values = (seal.clone(), reason.clone());
        let item = self
            .verb(&caller, "SealEvidence", c, &values, |item, _, at| {
                require(item, "SealEvidence")?;
                item.state = ItemState::Sealed;
                Ok(NewEntry::new(Action::Sealed, &caller.subject, &reason, at).with("seal", seal))
            })
            .await?;
        Ok(Response::new(pb::SealEvidenceResponse { item: Some(item) }))
    }

    /// A verb whose request is the item, the revision read, a reason and a key.
    async fn verb_with_reason(
        &self,
        caller: &Principal,
        method: &'static str,
        (item_id, revision, reason, key): (&str, i32, &str, &str),
        apply: impl FnOnce(&mut ItemRow, &IncidentRow, DbTime, &str) -> Result<NewEntry, CustodyError>,
    ) -> Result<pb::EvidenceItem, Status> {
        let mut v = Violations::new();
        let c = common(&mut v, item_id, revision, key);
        let reason = text(&mut v, "reason", reason, PARAGRAPH, true);
        v.finish().map_err(CustodyError::Invalid)?;
        Ok(self
            .verb(caller, method, c, &reason.clone(), |item, incident, at| {
                apply(item, incident, at, &reason)
            })
            .await?)
    }

    pub(crate) async fn unseal_evidence(
        &self,
        r: Request<pb::UnsealEvidenceRequest>,
    ) -> Result<Response<pb::UnsealEvidenceResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let parts = (
            req.item_id.as_str(),
            req.revision,
            req.reason.as_str(),
            req.idempotency_key.as_str(),
        );
        let item = self
            .verb_with_reason(&caller, "UnsealEvidence", parts, |item, _, at, reason| {
                require(item, "UnsealEvidence")?;
                item.state = ItemState::InCustody;
                Ok(NewEntry::new(Action::Unsealed, &caller.subject, reason, at))
            })
            .await?;
        Ok(Response::new(pb::UnsealEvidenceResponse {
            item: Some(item),
        }))
    }

    pub(crate) async fn place_legal_hold(
        &self,
        r: Request<pb::PlaceLegalHoldRequest>,
    ) -> Result<Response<pb::PlaceLegalHoldResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let parts = (
            req.item_id.as_str(),
            req.revision,
            req.reason.as_str(),
            req.idempotency_key.as_str(),
        );
        let item = self
            .verb_with_reason(
                &caller,
                "PlaceLegalHold",
                parts,
                |item, incident, at, reason| {
                    require_disposition(&caller, incident)?;
                    require(item, "PlaceLegalHold")?;
                    item.hold = Some(JsonText(Hold {
                        reason: reason.to_owned(),
                        placed_by: caller.subject.clone(),
                        placed_at: rfc3339(at),
                    }));
                    Ok(NewEntry::new(
                        Action::HoldPlaced,
                        &caller.subject,
                        reason,
                        at,
                    ))
                },
            )
            .await?;
        Ok(Response::new(pb::PlaceLegalHoldResponse {
            item: Some(item),
        }))
    }

    pub(crate) async fn lift_legal_hold(
        &self,
        r: Request<pb::LiftLegalHoldRequest>,
    ) -> Result<Response<pb::LiftLegalHoldResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let parts = (
            req.item_id.as_str(),
            req.revision,
            req.reason.as_str(),
            req.idempotency_key.as_str(),
        );
        let item = self
            .verb_with_reason(
                &caller,
                "LiftLegalHold",
                parts,
                |item, incident, at, reason| {
                    require_disposition(&caller, incident)?;
                    require(item, "LiftLegalHold")?;
                    let held_for = item.hold.take().map(|h| h.0.reason).unwrap_or_default();
                    Ok(
                        NewEntry::new(Action::HoldLifted, &caller.subject, reason, at)
                            .with("held_for", held_for),
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::LiftLegalHoldResponse {
            item: Some(item),
        }))
    }

    pub(crate) async fn release_evidence(
        &self,
        r: Request<pb::ReleaseEvidenceRequest>,
    ) -> Result<Response<pb::ReleaseEvidenceResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let c = common(&mut v, &req.item_id, req.revision, &req.idempotency_key);
        let to = line(&mut v, "released_to", &req.released_to, true);
        let reason = text(&mut v, "reason", &req.reason, PARAGRAPH, true);
        v.finish().map_err(CustodyError::Invalid)?;
        let values = (to.clone(), reason.clone());
        let item = self
            .verb(
                &caller,
                "ReleaseEvidence",
                c,
                &values,
                |item, incident, at| {
                    require_disposition(&caller, incident)?;
                    require(item, "ReleaseEvidence")?;
                    item.state = ItemState::Released;
                    Ok(
                        NewEntry::new(Action::Released, &caller.subject, &reason, at)
                            .with("released_to", to)
                            .with("custodian", item.custodian.clone()),
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::ReleaseEvidenceResponse {
            item: Some(item),
        }))
    }

    pub(crate) async fn dispose_evidence(
        &self,
        r: Request<pb::DisposeEvidenceRequest>,
    ) -> Result<Response<pb::DisposeEvidenceResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let c = common(&mut v, &req.item_id, req.revision, &req.idempotency_key);
        let method = text(&mut v, "method", &req.method, PARAGRAPH, true);
        let reason = text(&mut v, "reason", &req.reason, PARAGRAPH, true);
        v.finish().map_err(CustodyError::Invalid)?;
        let values = (method.clone(), reason.clone());
        let item = self
            .verb(
                &caller,
                "DisposeEvidence",
                c,
                &values,
                |item, incident, at| {
                    require_disposition(&caller, incident)?;
                    require(item, "DisposeEvidence")?;
                    item.state = ItemState::Disposed;
                    Ok(
                        NewEntry::new(Action::Disposed, &caller.subject, &reason, at)
                            .with("method", method),
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::DisposeEvidenceResponse {
            item: Some(item),
        }))
    }
}
