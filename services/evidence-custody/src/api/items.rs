//! RegisterEvidence, GetEvidence and ListEvidence.

use custos_kit::{
    auth::{Principal, require_authenticated},
    error::{Violations, text},
    idempotency::{self, Claim, Key},
    outbox::NewEvent,
    page,
    storage::{DbTime, JsonText},
    time_fmt::to_timestamp,
};
use custos_proto::custody::v1 as pb;
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    CustodyApi, INCIDENT_EXAMPLE, ITEM_EXAMPLE, ItemRef, accessed, genesis_head, hold_visible,
    item_to_wire, parse_ref, record_read, rfc3339, visible_incident, visible_item,
};
use crate::{
    error::CustodyError,
    evidence::{Action, Collection, ItemState, Kind, is_time_zone},
    store::{self, ItemFilter, ItemRow, NewEntry},
};

/// A one-line name of a person or place.
const LINE: usize = 300;
/// A paragraph.
const PARAGRAPH: usize = 2_000;

/// Checks a one-line field.
pub(crate) fn line(v: &mut Violations, field: &str, value: &str, required: bool) -> String {
    let value = text(v, field, value, LINE, required);
    if value.contains(['\n', '\r']) {
        v.add(field, "must be one line");
    }
    value
}

/// A validated registration (what the idempotency fingerprint covers).
#[derive(Debug)]
struct Registration {
    incident: Option<ItemRef>,
    kind: Option<Kind>,
    description: String,
    collection: Collection,
    custodian: String,
    storage_location: String,
    derived_from: Option<ItemRef>,
}

fn registration(
    v: &mut Violations,
    req: &pb::RegisterEvidenceRequest,
    now: DbTime,
) -> Registration {
    let incident = parse_ref(v, "incident_id", &req.incident_id, INCIDENT_EXAMPLE);
    let kind = v.check("kind", Kind::from_wire(req.kind));
    let description = text(v, "description", &req.description, PARAGRAPH, true);
    let c = req.collection.clone().unwrap_or_default();
    if req.collection.is_none() {
        v.add("collection", "is required");
    }
    let collected_at = match &c.collected_at {
        None => {
            v.add("collection.collected_at", "is required");
            None
        }
        Some(_) => v.optional_time("collection.collected_at", &c.collected_at),
    };
    if let Some(at) = collected_at
        && at.get() > now.get() + time::Duration::minutes(5)
    {
        v.add("collection.collected_at", "is in the future");
    }
    let time_zone = c.time_zone.trim().to_owned();
    if time_zone.is_empty() {
        v.add(
            "collection.time_zone",
            "is required (an IANA name such as Europe/London, or an offset such as +01:00)",
        );
    } else if !is_time_zone(&time_zone) {
        v.add(
            "collection.time_zone",
            "must be an IANA name such as Europe/London, or an offset such as +01:00",
        );
    }
    let collection = Collection {
        found_at: line(v, "collection.found_at", &c.found_at, true),
        collected_by: line(v, "collection.collected_by", &c.collected_by, true),
        collected_at: collected_at.map(rfc3339).unwrap_or_default(),
        time_zone,
        method: text(v, "collection.method", &c.method, PARAGRAPH, true),
        volatility: text(v, "collection.volatility", &c.volatility, PARAGRAPH, false),
    };
    let derived_from = if req.derived_from_item_id.trim().is_empty() {
        None
    } else {
        parse_ref(
            v,
            "derived_from_item_id",
            &req.derived_from_item_id,
            ITEM_EXAMPLE,
        )
    };
    Registration {
        incident,
        kind,
        description,
        collection,
        custodian: line(v, "custodian", &req.custodian, true),
        storage_location: line(v, "storage_location", &req.storage_location, true),
        derived_from,
    }
}

impl CustodyApi {
    pub(crate) async fn register_evidence(
        &self,
        r: Request<pb::RegisterEvidenceRequest>,
    ) -> Result<Response<pb::RegisterEvidenceResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let now = DbTime::now();
        let mut v = Violations::new();
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        let d = registration(&mut v, &req, now);
        v.finish().map_err(CustodyError::Invalid)?;
        let key = Key::new(&caller.subject, "RegisterEvidence", &req.idempotency_key);
        let fingerprint = idempotency::fingerprint(&d);
        let mut tx = self.db.begin().await.map_err(CustodyError::from)?;
        let pending = match idempotency::claim(&mut tx, &key, &fingerprint)
            .await
            .map_err(CustodyError::from)?
        {
            Claim::Replay(bytes) => {
                let response =
                    pb::RegisterEvidenceResponse::decode(bytes.as_slice()).map_err(|e| {
                        CustodyError::Storage(custos_kit::storage::StorageError::Corrupt(
                            e.to_string(),
                        ))
                    })?;
                // A replay answers only someone who may still see the incident.
                let incident = response
                    .item
                    .as_ref()
                    .and_then(|i| Uuid::try_parse(&i.incident_id).ok());
                if !super::sees(&mut tx, &caller, incident.unwrap_or_default()).await? {
                    return Err(CustodyError::IncidentNotFound.into());
                }
                return Ok(Response::new(response));
            }
            Claim::New(pending) => pending,
        };
        let incident_ref = d.incident.clone().expect("validated");
        let incident = visible_incident(&mut tx, &caller, &incident_ref).await?;
        let mut parent = match &d.derived_from {
            None => None,
            Some(p) => {
                let (found, _) = visible_item(&mut tx, &caller, p)
                    .await
                    .map_err(|e| match e {
                        CustodyError::ItemNotFound => {
                            CustodyError::Invalid(vec![custos_kit::error::FieldViolation {
                                field: "derived_from_item_id".into(),
                                description: "is not an item you can see".into(),
                            }])
                        }
                        other => other,
                    })?;
                let held = hold_visible(&mut tx, &caller, found.id).await?;
                if held.incident_id != incident.id {
                    return Err(
                        CustodyError::Invalid(vec![custos_kit::error::FieldViolation {
                            field: "derived_from_item_id".into(),
                            description: format!(
                                "is evidence of another incident, not {}",
                                incident.reference
                            ),
                        }])
                        .into(),
                    );
                }
                if held.content_sha256.is_none() {
                    return Err(CustodyError::NoContent.into());
                }
                Some(held)
            }
        };
        let kind = d.kind.expect("validated");
        let row = ItemRow {
            id: Uuid::now_v7(),
            number: 0,
            reference: String::new(),
            incident_id: incident.id,
            kind,
            description: d.description.clone(),
            collection: JsonText(d.collection.clone()),
            custodian: d.custodian.clone(),
            storage_location: d.storage_location.clone(),
            state: ItemState::InCustody,
            hold: None,
            content_sha256: None,
            content_size: None,
            content_key: None,
            content_file_name: None,
            content_added_at: None,
            content_added_by: None,
            parent_item_id: parent.as_ref().map(|p| p.id),
            parent_reference: parent.as_ref().map(|p| p.reference.clone()),
            parent_sha256: parent.as_ref().and_then(|p| p.content_sha256.clone()),
            registered_by: caller.subject.clone(),
            registered_at: now,
            revision: 1,
            entry_count: 0,
            head_hash: genesis_head(),
        };
        let prefix = format!("EVD-{}-", now.get().year());
        let mut row = store::insert_item(&mut tx, row, &prefix)
            .await
            .map_err(CustodyError::from)?;
        let c = &d.collection;
        let entry = NewEntry::new(Action::Registered, &caller.subject, "", now)
            .with("incident", incident.reference.clone())
            .with("kind", kind.name())
            .with("description", d.description.clone())
            .with("custodian", d.custodian.clone())
            .with("storage_location", d.storage_location.clone())
            .with("found_at", c.found_at.clone())
            .with("collected_by", c.collected_by.clone())
            .with("collected_at", c.collected_at.clone())
            .with("time_zone", c.time_zone.clone())
            .with("method", c.method.clone())
            .with("volatility", c.volatility.clone())
            .with(
                "derived_from",
                row.parent_reference.clone().unwrap_or_default(),
            )
            .with(
                "derived_from_sha256",
                row.parent_sha256.clone().unwrap_or_default(),
            );
        store::append(&mut tx, &mut row, entry, &self.signer)
            .await
            .map_err(CustodyError::from)?;
        store::save_item(&mut tx, &row)
            .await
            .map_err(CustodyError::from)?;
        if let Some(parent) = parent.as_mut() {
            let entry = NewEntry::new(Action::Derived, &caller.subject, "", now)
                .with("derived_item", row.reference.clone());
            store::append(&mut tx, parent, entry, &self.signer)
                .await
                .map_err(CustodyError::from)?;
            store::save_item(&mut tx, parent)
                .await
                .map_err(CustodyError::from)?;
        }
        tx.append_event(&NewEvent::new(
            row.id,
            row.reference.clone(),
            now.get(),
            &pb::EvidenceRegistered {
                incident_id: incident.id.to_string(),
                incident_reference: incident.reference.clone(),
                kind: kind.to_wire(),
                registered_at: Some(to_timestamp(now.get())),
            },
        ))
        .await
        .map_err(CustodyError::from)?;
        let response = pb::RegisterEvidenceResponse {
            item: Some(item_to_wire(&row, &incident)),
        };
        idempotency::complete(&mut tx, pending, &response)
            .await
            .map_err(CustodyError::from)?;
        tx.commit().await.map_err(CustodyError::from)?;
        tracing::info!(item_id = %row.id, reference = %row.reference, incident = %incident.reference, by = %caller.subject, "evidence registered");
        Ok(Response::new(response))
    }

    pub(crate) async fn get_evidence(
        &self,
        r: Request<pb::GetEvidenceRequest>,
    ) -> Result<Response<pb::GetEvidenceResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let item = parse_ref(&mut v, "item_id", &req.item_id, ITEM_EXAMPLE);
        let reason = text(&mut v, "reason", &req.reason, PARAGRAPH, false);
        v.finish().map_err(CustodyError::Invalid)?;
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let (row, incident) = visible_item(&mut conn, &caller, &item.expect("validated")).await?;
        drop(conn);
        let row = record_read(
            &self.db,
            &self.signer,
            &caller,
            row.id,
            accessed(&caller, "GetEvidence", &reason),
        )
        .await?;
        Ok(Response::new(pb::GetEvidenceResponse {
            item: Some(item_to_wire(&row, &incident)),
        }))
    }

    pub(crate) async fn list_evidence(
        &self,
        r: Request<pb::ListEvidenceRequest>,
    ) -> Result<Response<pb::ListEvidenceResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let f = req.filter.unwrap_or_default();
        let mut v = Violations::new();
        let limit = page::size(&mut v, "page_size", req.page_size);
        let incident = if f.incident_id.trim().is_empty() {
            None
        } else {
            parse_ref(
                &mut v,
                "filter.incident_id",
                &f.incident_id,
                INCIDENT_EXAMPLE,
            )
        };
        let mut filter = ItemFilter {
            on_hold: f.on_legal_hold,
            ..ItemFilter::default()
        };
        for (i, s) in f.states.iter().enumerate() {
            if let Some(s) = v.check(&format!("filter.states[{i}]"), ItemState::from_wire(*s)) {
                filter.states.push(s);
            }
        }
        for (i, k) in f.kinds.iter().enumerate() {
            if let Some(k) = v.check(&format!("filter.kinds[{i}]"), Kind::from_wire(*k)) {
                filter.kinds.push(k);
            }
        }
        let scope = format!(
            "ListEvidence:{:?}:{:?}:{:?}:{:?}",
            incident, filter.states, filter.kinds, filter.on_hold
        );
        let after: Option<(DbTime, Uuid)> = self
            .db
            .page_tokens()
            .open(scope.as_bytes(), &req.page_token)
            .unwrap_or_else(|e| {
                v.add("page_token", e);
                None
            });
        v.finish().map_err(CustodyError::Invalid)?;
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        if let Some(i) = &incident {
            match visible_incident(&mut conn, &caller, i).await {
                Ok(row) => filter.incident_id = Some(row.id),
                // An incident the caller may not see lists nothing, as an unknown one.
                Err(CustodyError::IncidentNotFound) => {
                    return Ok(Response::new(pb::ListEvidenceResponse::default()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !caller.has_any(super::SEE_ALL) {
            filter.visible = Some(
                store::visible_incidents(&mut conn, &caller.subject)
                    .await
                    .map_err(CustodyError::from)?,
            );
        }
        let mut rows = store::list_items(&mut conn, &filter, after, limit + 1)
            .await
            .map_err(CustodyError::from)?;
        drop(conn);
        let next_page_token = page::cut(&mut rows, limit, |r| {
            self.db
                .page_tokens()
                .seal(scope.as_bytes(), &(r.registered_at, r.id))
        });
        let items = self.record_reads(&caller, &rows).await?;
        Ok(Response::new(pb::ListEvidenceResponse {
            items,
            next_page_token,
        }))
    }

    /// Records a read of each listed item (one transaction; an item that left the
    /// caller's sight meanwhile is left out) and returns them as they are after it.
    async fn record_reads(
        &self,
        caller: &Principal,
        rows: &[ItemRow],
    ) -> Result<Vec<pb::EvidenceItem>, CustodyError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        ids.sort();
        let now = DbTime::now();
        let mut tx = self.db.begin().await?;
        let held = store::hold_items(&mut tx, &ids).await?;
        let mut after = Vec::with_capacity(held.len());
        for mut item in held {
            if !super::sees(&mut tx, caller, item.incident_id).await? {
                continue;
            }
            let entry = NewEntry::new(Action::Accessed, &caller.subject, "", now)
                .with("read", "ListEvidence");
            store::append(&mut tx, &mut item, entry, &self.signer).await?;
            store::save_item(&mut tx, &item).await?;
            let incident = store::incident(&mut tx, item.incident_id).await?;
            after.push((item, incident));
        }
        tx.commit().await?;
        // Back in the page's order.
        let mut out = Vec::with_capacity(after.len());
        for r in rows {
            if let Some((item, Some(incident))) = after.iter().find(|(i, _)| i.id == r.id) {
                out.push(item_to_wire(item, incident));
            }
        }
        Ok(out)
    }
}
