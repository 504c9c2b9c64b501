//! IncidentService: the incident register over gRPC. Every method first finds the
//! incident and the caller's standing to it (need to know, 14.2.2): a caller who may not
//! see it gets INCIDENT_NOT_FOUND, exactly as for an incident that does not exist.

mod access;
mod actions;
mod change;
mod read;
mod update;

pub(crate) use update::raise_flags;

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
    store::{self, IncidentKey, RegisterRow},
};

#[derive(Debug, Clone)]
pub struct IncidentApi {
    db: Db,
    /// The configured business service codes.
    business_services: Arc<BTreeSet<String>>,
}

impl IncidentApi {
    pub fn new(db: Db, business_services: &[String]) -> Self {
        Self {
            db,
            business_services: Arc::new(business_services.iter().cloned().collect()),
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
        report_count: i32::try_from(r.report_count).unwrap_or(i32::MAX),
        expected_recovery_at: r.expected_recovery_at.map(|t| to_timestamp(t.get())),
        declared_by: r.declared_by,
        declared_at: Some(to_timestamp(r.declared_at.get())),
        updated_at: Some(to_timestamp(r.updated_at.get())),
        revision: r.revision,
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
}

/// What opening a change found.
enum Opened {
    New(Box<Changing>),
    /// The key was used for this very request: its response, encoded.
    Replay(Vec<u8>),
}

impl IncidentApi {
    /// The caller's standing to an incident, from what is stored.
    async fn standing(
        &self,
        conn: impl custos_kit::storage::AsConn,
        caller: &Principal,
        row: &RegisterRow,
    ) -> Result<Standing, ClassificationError> {
        let quick = Standing::of(caller, row.officer.as_deref(), false);
        if quick != Standing::Stranger {
            return Ok(quick);
        }
        let listed = store::is_listed(conn, row.id, &caller.subject).await?;
        Ok(Standing::of(caller, row.officer.as_deref(), listed))
    }

    /// Begins a transaction that holds the incident, and checks the caller's standing
    /// to it: a stranger is told it does not exist; someone who may see it but not do
    /// what `needs` asks is refused.
    async fn hold(
        &self,
        caller: &Principal,
        key: &IncidentKey,
        needs: Needs,
    ) -> Result<(Tx, RegisterRow, Standing), ClassificationError> {
        let mut tx = self.db.begin().await?;
        let row = store::hold_incident(&mut tx, key).await?.ok_or(
            ClassificationError::IncidentNotFound {
                field: "incident_id",
            },
        )?;
        let standing = self.standing(&mut tx, caller, &row).await?;
        if !standing.sees() {
            return Err(ClassificationError::IncidentNotFound {
                field: "incident_id",
            });
        }
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
        Ok((tx, row, standing))
    }

    /// Opens a keyed change: holds the incident (as [`Self::hold`]), then claims the
    /// idempotency key. A replay is answered before the incident's state or revision is
    /// checked (they have moved on since the first call).
    async fn open_change(
        &self,
        caller: &Principal,
        key: &IncidentKey,
        needs: Needs,
        idempotency_key: &Key,
        fingerprint: &[u8],
    ) -> Result<Opened, ClassificationError> {
        let (mut tx, row, _) = self.hold(caller, key, needs).await?;
        Ok(
            match idempotency::claim(&mut tx, idempotency_key, fingerprint).await? {
                Claim::Replay(bytes) => Opened::Replay(bytes),
                Claim::New(pending) => Opened::New(Box::new(Changing { tx, pending, row })),
            },
        )
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
