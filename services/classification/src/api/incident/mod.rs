//! IncidentService: the incident register over gRPC. Every method first finds the
//! incident and the caller's standing to it (need to know, 14.2.2): a caller who may not
//! see it gets INCIDENT_NOT_FOUND, exactly as for an incident that does not exist.

mod access;
mod actions;
mod breach;
mod change;
mod costs;
mod impact;
mod read;
mod review;
mod update;

pub(crate) use update::link_report;

use std::{collections::BTreeSet, sync::Arc};

use custos_kit::{
    auth::{self, Principal},
    error::Violations,
    idempotency::{self, Claim, Key, Pending},
    storage::{Db, Tx},
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1::{self as pb, incident_service_server};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    error::ClassificationError,
    incident::{IncidentState, Standing},
    matrix::RiskMatrix,
    store::{self, IncidentKey, RegisterRow, SeenRow},
};

#[derive(Debug, Clone)]
pub struct IncidentApi {
    db: Db,
    matrix: Arc<RiskMatrix>,
    /// The matrix's revision (RiskMatrix.revision), kept with each impact scored.
    matrix_revision: Arc<str>,
    /// The configured business service codes.
    business_services: Arc<BTreeSet<String>>,
    /// The configured cost category codes.
    cost_categories: Arc<BTreeSet<String>>,
}

impl IncidentApi {
    pub fn new(
        db: Db,
        matrix: Arc<RiskMatrix>,
        business_services: &[String],
        cost_categories: &[String],
    ) -> Self {
        let matrix_revision = crate::api::matrix_revision(&matrix).into();
        Self {
            db,
            matrix,
            matrix_revision,
            business_services: Arc::new(business_services.iter().cloned().collect()),
            cost_categories: Arc::new(cost_categories.iter().cloned().collect()),
        }
    }
}

/// An incident's id or reference, as a request names it in `field`.
fn parse_key(v: &mut Violations, field: &str, value: &str) -> Option<IncidentKey> {
    let value = value.trim();
    if value.is_empty() {
        v.add(field, "is required: the incident's id or reference");
        return None;
    }
    match Uuid::try_parse(value) {
        Ok(id) => Some(IncidentKey::Id(id)),
        Err(_) if value.len() <= 32 && value.bytes().all(|b| b.is_ascii_graphic()) => {
            Some(IncidentKey::Reference(value.to_owned()))
        }
        Err(_) => {
            v.add(
                field,
                "must be an incident's id (a UUID) or reference (e.g. INC-2026-000017)",
            );
            None
        }
    }
}

/// A person as a request names them (the subject of their token).
fn parse_subject(v: &mut Violations, field: &str, value: &str) -> String {
    let subject = custos_kit::error::text(v, field, value, 200, true);
    if subject.chars().any(char::is_whitespace) {
        v.add(field, "must be a token subject (no spaces)");
    }
    subject
}

pub(crate) fn incident_to_wire(r: RegisterRow) -> pb::Incident {
    let flags = r.flags().to_wire();
    pb::Incident {
        id: r.id.to_string(),
        reference: r.reference,
        title: r.title,
        summary: r.summary,
        category: r.category,
        impact: Some(r.impact.to_wire()),
        overall_level: r.overall_level.to_wire(),
        state: r.state.to_wire(),
        flags: Some(flags),
        officer: r.officer.unwrap_or_default(),
        report_count: r.report_count,
        expected_recovery_at: r.expected_recovery_at.map(|t| to_timestamp(t.get())),
        declared_by: r.declared_by,
        declared_at: Some(to_timestamp(r.declared_at.get())),
        updated_at: Some(to_timestamp(r.updated_at.get())),
        revision: r.revision,
        breach: r.breach.map(|b| b.to_wire()),
        review: r.review.map(|v| v.to_wire()),
        closed_at: r.closed_at.map(|t| to_timestamp(t.get())),
        continuity_statement: r.continuity_statement,
        continuity_title: r.continuity_title,
    }
}

/// What a change needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// The officer or an advisor; `&str` says what, for the refusal.
    Change(&'static str),
    /// Anyone on the access list, the officer or an advisor.
    Act,
}

/// A change under way: its transaction, with the incident held and the key claimed.
struct Changing {
    tx: Tx,
    pending: Pending,
    row: RegisterRow,
    standing: Standing,
    /// The incident's public continuity state before the change, if it has one.
    notice_before: Option<custos_proto::continuity::v1::IncidentNotice>,
}

/// What opening a change found.
enum Opened {
    New(Box<Changing>),
    /// The key was used for this very request: its response, encoded (its read already
    /// audited).
    Replay(Vec<u8>),
}

/// NOT_FOUND, for an incident that does not exist and one the caller may not see alike.
fn not_found() -> ClassificationError {
    ClassificationError::IncidentNotFound {
        field: "incident_id",
    }
}

/// The caller's standing to an incident they asked for; a stranger is told it does not
/// exist.
fn standing(caller: &Principal, seen: &SeenRow) -> Result<Standing, ClassificationError> {
    let standing = Standing::of(caller, seen.row.officer.as_deref(), seen.listed);
    if !standing.sees() {
        return Err(not_found());
    }
    Ok(standing)
}

impl IncidentApi {
    /// Begins a transaction that holds the incident, and checks the caller's standing
    /// to it: a stranger is told it does not exist (before the row is locked, so that
    /// they neither wait behind a change nor delay one); someone who may see it but not
    /// do what `needs` asks is refused.
    async fn hold(
        &self,
        caller: &Principal,
        key: &IncidentKey,
        needs: Needs,
    ) -> Result<(Tx, RegisterRow, Standing), ClassificationError> {
        // A read connection first (SQLite: not the writer), so that a stranger takes no
        // lock at all.
        let seen = store::incident_for(self.db.read().await?, key, &caller.subject)
            .await?
            .ok_or_else(not_found)?;
        standing(caller, &seen)?;
        let mut tx = self.db.begin().await?;
        // Again, held: the list or the officer may have changed in between.
        let seen = store::hold_incident_for(&mut tx, key, &caller.subject)
            .await?
            .ok_or_else(not_found)?;
        let standing = standing(caller, &seen)?;
        match needs {
            Needs::Change(what) if !standing.changes() => {
                return Err(ClassificationError::NotIncidentOfficer(what));
            }
            Needs::Act if !standing.acts() => {
                return Err(ClassificationError::NotIncidentOfficer(
                    "add to the actions log (or someone on its access list)",
                ));
            }
            _ => {}
        }
        Ok((tx, seen.row, standing))
    }

    /// Opens a keyed change: holds the incident (as [`Self::hold`]), then claims the
    /// idempotency key with a fingerprint of the incident's id and `request` (the rest of
    /// the request, validated), so that naming it by id or by reference is one request.
    /// A replay is answered before the incident's state or revision is checked (they have
    /// moved on since the first call); answering it is a read, audited as one.
    async fn open_change(
        &self,
        caller: &Principal,
        key: &IncidentKey,
        needs: Needs,
        idempotency_key: &Key,
        request: &[u8],
    ) -> Result<Opened, ClassificationError> {
        let (mut tx, row, standing) = self.hold(caller, key, needs).await?;
        let fingerprint = idempotency::fingerprint(&(row.id, request));
        match idempotency::claim(&mut tx, idempotency_key, &fingerprint).await? {
            Claim::Replay(bytes) => {
                // The stored response may show what the incident held then (personal
                // data, even if the flag was cleared since): always a read, audited.
                custos_kit::audit::record(
                    &mut tx,
                    caller,
                    "incident.read",
                    "incident",
                    &[row.id.to_string()],
                )
                .await?;
                tx.commit().await?;
                Ok(Opened::Replay(bytes))
            }
            Claim::New(pending) => Ok(Opened::New(Box::new(Changing {
                tx,
                pending,
                notice_before: crate::continuity::notice(&row),
                row,
                standing,
            }))),
        }
    }
}

/// A closed incident no longer changes.
fn not_closed(row: &RegisterRow) -> Result<(), ClassificationError> {
    if row.state == IncidentState::Closed {
        return Err(ClassificationError::IncidentClosed {
            field: "incident_id",
        });
    }
    Ok(())
}

/// The revision the caller read must be the incident's.
fn at_revision(row: &RegisterRow, expected: i32) -> Result<(), ClassificationError> {
    if row.revision != expected {
        return Err(ClassificationError::IncidentChanged {
            expected,
            current: row.revision,
        });
    }
    Ok(())
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl incident_service_server::IncidentService for IncidentApi {
    async fn get_incident(
        &self,
        r: Request<pb::GetIncidentRequest>,
    ) -> Reply<pb::GetIncidentResponse> {
        self.get(r).await
    }

    async fn list_incidents(
        &self,
        r: Request<pb::ListIncidentsRequest>,
    ) -> Reply<pb::ListIncidentsResponse> {
        self.list(r).await
    }

    async fn update_incident(
        &self,
        r: Request<pb::UpdateIncidentRequest>,
    ) -> Reply<pb::UpdateIncidentResponse> {
        let caller = auth::require_authenticated(&r)?.clone();
        let incident = self.update(&caller, r.into_inner()).await?;
        Ok(Response::new(pb::UpdateIncidentResponse {
            incident: Some(incident),
        }))
    }

    async fn assign_incident_officer(
        &self,
        r: Request<pb::AssignIncidentOfficerRequest>,
    ) -> Reply<pb::AssignIncidentOfficerResponse> {
        let caller = auth::require_authenticated(&r)?.clone();
        let incident = self.assign(&caller, r.into_inner()).await?;
        Ok(Response::new(pb::AssignIncidentOfficerResponse {
            incident: Some(incident),
        }))
    }

    async fn investigate_incident(
        &self,
        r: Request<pb::InvestigateIncidentRequest>,
    ) -> Reply<pb::InvestigateIncidentResponse> {
        let (caller, m) = change::Move::from_request(r, |q| {
            (q.incident_id, q.revision, q.note, q.idempotency_key)
        })?;
        let incident = self
            .transition(&caller, m, IncidentState::Investigating)
            .await?;
        Ok(Response::new(pb::InvestigateIncidentResponse {
            incident: Some(incident),
        }))
    }

    async fn contain_incident(
        &self,
        r: Request<pb::ContainIncidentRequest>,
    ) -> Reply<pb::ContainIncidentResponse> {
        let (caller, m) = change::Move::from_request(r, |q| {
            (q.incident_id, q.revision, q.note, q.idempotency_key)
        })?;
        let incident = self
            .transition(&caller, m, IncidentState::Contained)
            .await?;
        Ok(Response::new(pb::ContainIncidentResponse {
            incident: Some(incident),
        }))
    }

    async fn recover_incident(
        &self,
        r: Request<pb::RecoverIncidentRequest>,
    ) -> Reply<pb::RecoverIncidentResponse> {
        let (caller, m) = change::Move::from_request(r, |q| {
            (q.incident_id, q.revision, q.note, q.idempotency_key)
        })?;
        let incident = self
            .transition(&caller, m, IncidentState::Recovering)
            .await?;
        Ok(Response::new(pb::RecoverIncidentResponse {
            incident: Some(incident),
        }))
    }

    async fn resolve_incident(
        &self,
        r: Request<pb::ResolveIncidentRequest>,
    ) -> Reply<pb::ResolveIncidentResponse> {
        let (caller, m) = change::Move::from_request(r, |q| {
            (q.incident_id, q.revision, q.note, q.idempotency_key)
        })?;
        let incident = self.transition(&caller, m, IncidentState::Resolved).await?;
        Ok(Response::new(pb::ResolveIncidentResponse {
            incident: Some(incident),
        }))
    }

    async fn record_incident_review(
        &self,
        r: Request<pb::RecordIncidentReviewRequest>,
    ) -> Reply<pb::RecordIncidentReviewResponse> {
        let caller = auth::require_authenticated(&r)?.clone();
        let incident = self.record_review(&caller, r.into_inner()).await?;
        Ok(Response::new(pb::RecordIncidentReviewResponse {
            incident: Some(incident),
        }))
    }

    async fn close_incident(
        &self,
        r: Request<pb::CloseIncidentRequest>,
    ) -> Reply<pb::CloseIncidentResponse> {
        let (caller, m) = change::Move::from_request(r, |q| {
            (q.incident_id, q.revision, q.note, q.idempotency_key)
        })?;
        let incident = self.close(&caller, m).await?;
        Ok(Response::new(pb::CloseIncidentResponse {
            incident: Some(incident),
        }))
    }

    async fn reassess_incident_impact(
        &self,
        r: Request<pb::ReassessIncidentImpactRequest>,
    ) -> Reply<pb::ReassessIncidentImpactResponse> {
        let caller = auth::require_authenticated(&r)?.clone();
        let incident = self.reassess(&caller, r.into_inner()).await?;
        Ok(Response::new(pb::ReassessIncidentImpactResponse {
            incident: Some(incident),
        }))
    }

    async fn list_incident_impacts(
        &self,
        r: Request<pb::ListIncidentImpactsRequest>,
    ) -> Reply<pb::ListIncidentImpactsResponse> {
        self.impacts(r).await
    }

    async fn record_breach_awareness(
        &self,
        r: Request<pb::RecordBreachAwarenessRequest>,
    ) -> Reply<pb::RecordBreachAwarenessResponse> {
        let caller = auth::require_authenticated(&r)?.clone();
        let incident = self.record_breach(&caller, r.into_inner()).await?;
        Ok(Response::new(pb::RecordBreachAwarenessResponse {
            incident: Some(incident),
        }))
    }

    async fn decide_breach_notification(
        &self,
        r: Request<pb::DecideBreachNotificationRequest>,
    ) -> Reply<pb::DecideBreachNotificationResponse> {
        let caller = auth::require_authenticated(&r)?.clone();
        let incident = self.decide_breach(&caller, r.into_inner()).await?;
        Ok(Response::new(pb::DecideBreachNotificationResponse {
            incident: Some(incident),
        }))
    }

    async fn add_incident_cost(
        &self,
        r: Request<pb::AddIncidentCostRequest>,
    ) -> Reply<pb::AddIncidentCostResponse> {
        let caller = auth::require_authenticated(&r)?.clone();
        Ok(Response::new(self.add_cost(&caller, r.into_inner()).await?))
    }

    async fn list_incident_costs(
        &self,
        r: Request<pb::ListIncidentCostsRequest>,
    ) -> Reply<pb::ListIncidentCostsResponse> {
        self.costs(r).await
    }

    async fn grant_incident_access(
        &self,
        r: Request<pb::GrantIncidentAccessRequest>,
    ) -> Reply<pb::GrantIncidentAccessResponse> {
        self.grant(r).await
    }

    async fn revoke_incident_access(
        &self,
        r: Request<pb::RevokeIncidentAccessRequest>,
    ) -> Reply<pb::RevokeIncidentAccessResponse> {
        self.revoke(r).await
    }

    async fn list_incident_access(
        &self,
        r: Request<pb::ListIncidentAccessRequest>,
    ) -> Reply<pb::ListIncidentAccessResponse> {
        self.access_list(r).await
    }

    async fn add_incident_action(
        &self,
        r: Request<pb::AddIncidentActionRequest>,
    ) -> Reply<pb::AddIncidentActionResponse> {
        self.add_action(r).await
    }

    async fn list_incident_actions(
        &self,
        r: Request<pb::ListIncidentActionsRequest>,
    ) -> Reply<pb::ListIncidentActionsResponse> {
        self.actions(r).await
    }
}
