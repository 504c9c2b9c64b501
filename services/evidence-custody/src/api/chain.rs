//! The chain read, verified and reported: ListCustodyEntries, VerifyChain,
//! GetCustodyReport, GetCheckpoint.

use std::collections::BTreeMap;

use custos_kit::{
    auth::require_authenticated, error::Violations, page, storage::DbTime, time_fmt::to_timestamp,
};
use custos_proto::custody::v1 as pb;
use tonic::{Request, Response, Status};

use super::{
    CustodyApi, INCIDENT_EXAMPLE, ITEM_EXAMPLE, accessed, parse_ref, record_read, rfc3339,
    visible_incident, visible_item,
};
use crate::{
    chain::{EntryBody, Problem, StoredEntry, hex},
    checkpoint,
    error::CustodyError,
    evidence::Action,
    report::{REPORT_FORMAT, Report, ReportCheckpoint, ReportItem},
    signing::ALGORITHM,
    store::{self, CheckpointRow, ItemFilter},
};

fn entry_to_wire(e: &StoredEntry) -> pb::CustodyEntry {
    let body: Option<EntryBody> = serde_json::from_str(&e.body).ok();
    let (action, actor, at, reason, details) = match body {
        Some(b) => (
            Action::ALL
                .iter()
                .find(|a| a.name() == b.action)
                .map_or(0, |a| a.to_wire()),
            b.actor,
            time::OffsetDateTime::parse(&b.at, &time::format_description::well_known::Rfc3339).ok(),
            b.reason,
            b.details,
        ),
        None => (0, String::new(), None, String::new(), BTreeMap::new()),
    };
    pb::CustodyEntry {
        sequence: e.sequence,
        log_index: e.log_index,
        action,
        actor,
        at: at.map(to_timestamp),
        reason,
        details: details.into_iter().collect(),
        previous_hash: e.previous_hash.clone(),
        entry_hash: e.entry_hash.clone(),
        body: e.body.clone().into_bytes(),
    }
}

pub(crate) fn checkpoint_to_wire(c: &CheckpointRow) -> pb::Checkpoint {
    pb::Checkpoint {
        tree_size: c.tree_size,
        root_hash: c.root_hash.clone(),
        signed_at: Some(to_timestamp(c.signed_at.get())),
        signed: Some(pb::SignedDocument {
            document: c.note.clone().into_bytes(),
            signature: c.signature.clone(),
            key_id: c.key_id.clone(),
            algorithm: ALGORITHM.into(),
        }),
    }
}

fn problem_to_wire(p: Problem) -> pb::ChainProblem {
    pb::ChainProblem {
        sequence: p.sequence,
        log_index: p.log_index,
        description: p.description,
    }
}

impl CustodyApi {
    pub(crate) async fn list_custody_entries(
        &self,
        r: Request<pb::ListCustodyEntriesRequest>,
    ) -> Result<Response<pb::ListCustodyEntriesResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let item = parse_ref(&mut v, "item_id", &req.item_id, ITEM_EXAMPLE);
        let limit = page::size(&mut v, "page_size", req.page_size);
        let scope = format!("ListCustodyEntries:{}", req.item_id.trim());
        let after: Option<i32> = self
            .db
            .page_tokens()
            .open(scope.as_bytes(), &req.page_token)
            .unwrap_or_else(|e| {
                v.add("page_token", e);
                None
            });
        v.finish().map_err(CustodyError::Invalid)?;
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let (row, _) = visible_item(&mut conn, &caller, &item.expect("validated")).await?;
        drop(conn);
        // Every page's read is recorded (a page token is no way round it).
        record_read(
            &self.db,
            &self.signer,
            &caller,
            row.id,
            accessed(&caller, "ListCustodyEntries", ""),
        )
        .await?;
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let mut entries = store::entries_of(&mut conn, row.id, after.unwrap_or(0), Some(limit + 1))
            .await
            .map_err(CustodyError::from)?;
        let next_page_token = page::cut(&mut entries, limit, |e| {
            self.db.page_tokens().seal(scope.as_bytes(), &e.sequence)
        });
        Ok(Response::new(pb::ListCustodyEntriesResponse {
            entries: entries.iter().map(entry_to_wire).collect(),
            next_page_token,
        }))
    }

    pub(crate) async fn verify_chain(
        &self,
        r: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let item = parse_ref(&mut v, "item_id", &req.item_id, ITEM_EXAMPLE);
        v.finish().map_err(CustodyError::Invalid)?;
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let (row, incident) = visible_item(&mut conn, &caller, &item.expect("validated")).await?;
        let (entries, item_problem) =
            super::check_item(&mut conn, &row, &incident, &self.signer).await?;
        let checkpoint::LogCheck {
            latest,
            problem: log_problem,
            ..
        } = checkpoint::check_log(&mut conn, &self.signer)
            .await
            .map_err(CustodyError::from)?;
        drop(conn);
        let mut problem = item_problem.or(log_problem);
        let covered = latest.as_ref().map_or(0, |c| c.tree_size);
        let after_checkpoint = entries.iter().filter(|e| e.log_index >= covered).count();
        let mut content_verified = false;
        if row.content_key.is_some() {
            match self.recheck_content(&row).await? {
                None => content_verified = true,
                Some(description) => {
                    problem = problem.or(Some(Problem {
                        sequence: 0,
                        log_index: -1,
                        description,
                    }));
                }
            }
        }
        if let Some(p) = &problem {
            tracing::warn!(item_id = %row.id, reference = %row.reference, sequence = p.sequence, log_index = p.log_index, problem = %p.description, "custody chain verification failed");
        }
        record_read(
            &self.db,
            &self.signer,
            &caller,
            row.id,
            accessed(&caller, "VerifyChain", ""),
        )
        .await
        .map_err(|e| match (e, &problem) {
            // The read cannot be recorded on a broken chain: say what verification found.
            (CustodyError::ChainBroken { reference, .. }, Some(p)) => CustodyError::ChainBroken {
                reference,
                description: p.description.clone(),
            },
            (e, _) => e,
        })?;
        Ok(Response::new(pb::VerifyChainResponse {
            verified: problem.is_none(),
            entries_checked: i32::try_from(entries.len()).unwrap_or(i32::MAX),
            checkpoint: latest.as_ref().map(checkpoint_to_wire),
            entries_after_checkpoint: i32::try_from(after_checkpoint).unwrap_or(i32::MAX),
            content_verified,
            first_problem: problem.map(problem_to_wire),
        }))
    }

    pub(crate) async fn get_custody_report(
        &self,
        r: Request<pb::GetCustodyReportRequest>,
    ) -> Result<Response<pb::GetCustodyReportResponse>, Status> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let scope = match &req.scope {
            Some(pb::get_custody_report_request::Scope::ItemId(id)) => {
                parse_ref(&mut v, "item_id", id, ITEM_EXAMPLE).map(|r| (true, r))
            }
            Some(pb::get_custody_report_request::Scope::IncidentId(id)) => {
                parse_ref(&mut v, "incident_id", id, INCIDENT_EXAMPLE).map(|r| (false, r))
            }
            None => {
                v.add("scope", "is required: item_id or incident_id");
                None
            }
        };
        v.finish().map_err(CustodyError::Invalid)?;
        let (is_item, reference) = scope.expect("validated");
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let (label, ids) = if is_item {
            let (row, _) = visible_item(&mut conn, &caller, &reference).await?;
            (row.reference.clone(), vec![row.id])
        } else {
            let incident = visible_incident(&mut conn, &caller, &reference).await?;
            let filter = ItemFilter {
                incident_id: Some(incident.id),
                ..ItemFilter::default()
            };
            let mut ids = Vec::new();
            let mut after = None;
            loop {
                let page = store::list_items(&mut conn, &filter, after, 500)
                    .await
                    .map_err(CustodyError::from)?;
                let Some(last) = page.last() else { break };
                after = Some((last.registered_at, last.id));
                ids.extend(page.iter().map(|r| r.id));
            }
            (incident.reference.clone(), ids)
        };
        drop(conn);
        // Each item's read is recorded first, so the report shows it.
        for id in &ids {
            record_read(
                &self.db,
                &self.signer,
                &caller,
                *id,
                accessed(&caller, "GetCustodyReport", ""),
            )
            .await?;
        }
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        // Nothing is signed over a log or a chain that does not verify.
        let checkpoint::LogCheck {
            latest,
            problem: log_problem,
            ..
        } = checkpoint::check_log(&mut conn, &self.signer)
            .await
            .map_err(CustodyError::from)?;
        if let Some(p) = log_problem {
            return Err(CustodyError::ChainBroken {
                reference: "the custody log".into(),
                description: p.description,
            }
            .into());
        }
        // Each entry the checkpoint covers comes with its inclusion proof (RFC 6962
        // section 2.1.1) against the checkpoint's root.
        let covered = latest.as_ref().map_or(0, |c| c.tree_size);
        let mut tree = crate::chain::LogTree::new();
        for (_, hash) in store::log_leaves(&mut conn, covered)
            .await
            .map_err(CustodyError::from)?
        {
            tree.push(crate::chain::parse_hash(&hash).unwrap_or_default());
        }
        let mut items = Vec::with_capacity(ids.len());
        for id in &ids {
            let Some(row) = store::item(&mut conn, *id)
                .await
                .map_err(CustodyError::from)?
            else {
                continue;
            };
            let incident = store::incident(&mut conn, row.incident_id)
                .await
                .map_err(CustodyError::from)?
                .ok_or(CustodyError::ItemNotFound)?;
            let (entries, problem) =
                super::check_item(&mut conn, &row, &incident, &self.signer).await?;
            if let Some(p) = problem {
                return Err(CustodyError::ChainBroken {
                    reference: row.reference.clone(),
                    description: p.description,
                }
                .into());
            }
            let inclusion_proofs = entries
                .iter()
                .map(|e| {
                    u64::try_from(e.log_index)
                        .ok()
                        .filter(|i| *i < tree.len())
                        .map(|i| hex(&tree.prove(i)))
                        .unwrap_or_default()
                })
                .collect();
            items.push(ReportItem {
                item_id: row.id,
                reference: row.reference.clone(),
                incident_id: row.incident_id,
                incident_reference: incident.reference.clone(),
                kind: row.kind.name().to_owned(),
                description: row.description.clone(),
                state: row.state.name().to_owned(),
                custodian: row.custodian.clone(),
                storage_location: row.storage_location.clone(),
                content_sha256: row.content_sha256.clone(),
                content_size_bytes: row.content_size,
                legal_hold: row.hold.as_ref().map(|h| h.0.reason.clone()),
                entry_count: row.entry_count,
                head_hash: row.head_hash.clone(),
                entries,
                inclusion_proofs,
            });
        }
        drop(conn);
        let report = Report {
            format: REPORT_FORMAT.into(),
            generated_at: rfc3339(DbTime::now()),
            generated_by: caller.subject.clone(),
            scope: label,
            items,
            checkpoint: latest.map(|c| ReportCheckpoint {
                tree_size: c.tree_size,
                root_hash: c.root_hash,
                key_id: c.key_id,
                note: c.note,
                signature: hex(&c.signature),
            }),
        };
        let document = serde_json::to_vec_pretty(&report).expect("a report serialises");
        let signature = self.signer.sign(&document);
        Ok(Response::new(pb::GetCustodyReportResponse {
            report: Some(pb::SignedDocument {
                document,
                signature,
                key_id: self.signer.key_id().to_owned(),
                algorithm: ALGORITHM.into(),
            }),
        }))
    }

    pub(crate) async fn get_checkpoint(
        &self,
        r: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        require_authenticated(&r)?;
        let mut conn = self.db.read().await.map_err(CustodyError::from)?;
        let latest = store::latest_checkpoint(&mut conn)
            .await
            .map_err(CustodyError::from)?;
        Ok(Response::new(pb::GetCheckpointResponse {
            checkpoint: latest.as_ref().map(checkpoint_to_wire),
            public_key: self.signer.public_key().as_bytes().to_vec(),
            key_id: self.signer.key_id().to_owned(),
        }))
    }
}
