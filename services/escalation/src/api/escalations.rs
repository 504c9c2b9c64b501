//! EscalationService: escalations read (by those who may see them) and acknowledged (by
//! their nominees).

use custos_kit::{
    auth::{Principal, Role, require_authenticated},
    error::{Violations, text},
    page,
    storage::{Db, DbEnum, DbTime},
    time_fmt::to_timestamp,
};
use custos_proto::escalation::v1::{self as pb, escalation_service_server};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::parse_id;
use crate::{
    directory::{Level, Trigger},
    engine,
    error::EscalationError,
    escalation::{EscalationState, SubjectKind},
    store::{self, EscalationFilter, EscalationRow, NomineeRow, TierRow},
};

/// Roles that see every escalation; anyone else sees those naming them as a nominee.
pub const SEE_ALL: &[Role] = &[
    Role::SecurityAdvisor,
    Role::SeniorManagement,
    Role::PolicyOwner,
    Role::Admin,
    Role::Service,
];

/// EscalationService.
#[derive(Debug, Clone)]
pub struct EscalationApi {
    db: Db,
}

impl EscalationApi {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// Who is asking: someone who sees everything, or the contact (if any) they are.
struct Viewer {
    all: bool,
    contact: Option<Uuid>,
}

impl Viewer {
    fn sees(&self, nominees: &[NomineeRow]) -> bool {
        self.all
            || self
                .contact
                .is_some_and(|c| nominees.iter().any(|n| n.contact_id == c))
    }
}

impl EscalationApi {
    async fn viewer(&self, caller: &Principal) -> Result<Viewer, EscalationError> {
        let mut conn = self.db.read().await?;
        // A deactivated contact no longer acts for the organisation.
        let contact = store::contact_by_subject(&mut conn, &caller.subject)
            .await?
            .filter(|c| c.active)
            .map(|c| c.id);
        Ok(Viewer {
            all: caller.has_any(SEE_ALL),
            contact,
        })
    }

    /// An escalation the viewer may see, with its tiers and nominees; NOT_FOUND for one
    /// that does not exist or that they may not see.
    async fn visible(
        &self,
        viewer: &Viewer,
        id: Uuid,
    ) -> Result<(EscalationRow, Vec<TierRow>, Vec<NomineeRow>), EscalationError> {
        let mut conn = self.db.read().await?;
        let row = store::escalation(&mut conn, id)
            .await?
            .ok_or(EscalationError::EscalationNotFound)?;
        let nominees = store::nominees_of(&mut conn, id).await?;
        if !viewer.sees(&nominees) {
            return Err(EscalationError::EscalationNotFound);
        }
        let tiers = store::tiers_of(&mut conn, &[id]).await?;
        Ok((row, tiers, nominees))
    }
}

fn full(view: i32, default_full: bool) -> bool {
    match pb::EscalationView::try_from(view) {
        Ok(pb::EscalationView::Full) => true,
        Ok(pb::EscalationView::Basic) => false,
        _ => default_full,
    }
}

fn nominee_to_wire(n: &NomineeRow) -> pb::Nominee {
    pb::Nominee {
        contact_id: n.contact_id.to_string(),
        display_name: n.display_name.clone(),
        notified_at: Some(to_timestamp(n.notified_at.get())),
        acknowledged_at: n.acknowledged_at.map(|t| to_timestamp(t.get())),
        note: n.note.clone().unwrap_or_default(),
        missed_deadline: n.missed_deadline,
        acknowledged_by: n.acknowledged_by.clone().unwrap_or_default(),
    }
}

pub(crate) fn escalation_to_wire(
    row: &EscalationRow,
    tiers: &[TierRow],
    nominees: &[NomineeRow],
    with_nominees: bool,
) -> pb::Escalation {
    let facts = &row.facts.0;
    let about = match row.subject_kind {
        SubjectKind::Report => pb::escalation::About::Report(pb::ReportSubject {
            report_id: row.subject_id.to_string(),
            reference: row.reference.clone(),
            category: facts.category.clone(),
            personal_information: facts.personal,
            paper: facts.paper,
        }),
        SubjectKind::Incident => pb::escalation::About::Incident(pb::IncidentSubject {
            incident_id: row.subject_id.to_string(),
            reference: row.reference.clone(),
            category: facts.category.clone(),
            level: facts
                .level
                .and_then(Level::from_db)
                .map_or(0, Level::to_wire),
            service_affecting: facts.service_affecting,
            personal_data: facts.personal,
            paper_records: facts.paper,
        }),
    };
    let open = row.state == EscalationState::Open;
    pb::Escalation {
        id: row.id.to_string(),
        trigger: row.trigger.to_wire(),
        state: row.state.to_wire(),
        about: Some(about),
        tiers: tiers
            .iter()
            .filter(|t| t.escalation_id == row.id)
            .map(|t| {
                let of: Vec<&NomineeRow> = nominees
                    .iter()
                    .filter(|n| n.escalation_id == row.id && n.tier == t.tier)
                    .collect();
                pb::TierProgress {
                    tier: t.tier,
                    reached_at: Some(to_timestamp(t.reached_at.get())),
                    deadline_at: Some(to_timestamp(t.deadline_at.get())),
                    satisfied: !of.is_empty() && of.iter().all(|n| n.acknowledged_at.is_some()),
                    nominee_count: i32::try_from(of.len()).unwrap_or(i32::MAX),
                    acknowledged_count: i32::try_from(
                        of.iter().filter(|n| n.acknowledged_at.is_some()).count(),
                    )
                    .unwrap_or(i32::MAX),
                    nominees: if with_nominees {
                        of.into_iter().map(nominee_to_wire).collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect(),
        tier_count: row.tier_count,
        next_deadline_at: row
            .next_deadline_at
            .filter(|_| open)
            .map(|t| to_timestamp(t.get())),
        exhausted: row.exhausted,
        opened_at: Some(to_timestamp(row.opened_at.get())),
        ended_at: row.ended_at.map(|t| to_timestamp(t.get())),
        stopped_reason: row.stopped_reason.clone(),
        policy_revision: row.policy_revision,
        revision: row.revision,
    }
}

fn timeline_to_wire(t: &store::TimelineRow) -> pb::TimelineEntry {
    pb::TimelineEntry {
        sequence: t.sequence,
        kind: t.kind.to_wire(),
        at: Some(to_timestamp(t.at.get())),
        tier: t.tier,
        contact_id: t.contact_id.map(|c| c.to_string()).unwrap_or_default(),
        channel: t.channel.clone(),
        detail: t.detail.clone(),
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl escalation_service_server::EscalationService for EscalationApi {
    async fn get_escalation(
        &self,
        r: Request<pb::GetEscalationRequest>,
    ) -> Reply<pb::GetEscalationResponse> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let id = parse_id(&mut v, "escalation_id", &req.escalation_id);
        v.finish().map_err(EscalationError::Invalid)?;
        let viewer = self.viewer(&caller).await?;
        let (row, tiers, nominees) = self.visible(&viewer, id.unwrap_or_default()).await?;
        Ok(Response::new(pb::GetEscalationResponse {
            escalation: Some(escalation_to_wire(
                &row,
                &tiers,
                &nominees,
                full(req.view, true),
            )),
        }))
    }

    async fn list_escalations(
        &self,
        r: Request<pb::ListEscalationsRequest>,
    ) -> Reply<pb::ListEscalationsResponse> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let f = req.filter.unwrap_or_default();
        let mut v = Violations::new();
        let limit = page::size(&mut v, "page_size", req.page_size);
        let mut filter = EscalationFilter::default();
        for (i, s) in f.states.iter().enumerate() {
            if let Some(s) = v.check(
                &format!("filter.states[{i}]"),
                EscalationState::from_wire(*s),
            ) {
                filter.states.push(s);
            }
        }
        for (i, t) in f.triggers.iter().enumerate() {
            if let Some(t) = v.check(&format!("filter.triggers[{i}]"), Trigger::from_wire(*t)) {
                filter.triggers.push(t);
            }
        }
        if !f.subject_id.is_empty() {
            filter.subject_id = parse_id(&mut v, "filter.subject_id", &f.subject_id);
        }
        let now = DbTime::now();
        // A token is bound to the filter as given (and to the time `overdue` is judged
        // at: the first page's).
        let scope = format!(
            "ListEscalations:{:?}:{:?}:{:?}:{}:{}",
            filter.states, filter.triggers, filter.subject_id, f.overdue, f.mine
        );
        type Position = (DbTime, Uuid, i64);
        let after: Option<Position> = self
            .db
            .page_tokens()
            .open(scope.as_bytes(), &req.page_token)
            .unwrap_or_else(|e| {
                v.add("page_token", e);
                None
            });
        v.finish().map_err(EscalationError::Invalid)?;
        let read_at = after
            .map(|a| a.2)
            .and_then(DbTime::from_unix_micros)
            .unwrap_or(now);
        if f.overdue {
            filter.overdue_at = Some(read_at);
        }
        let viewer = self.viewer(&caller).await?;
        if f.mine || !viewer.all {
            match viewer.contact {
                Some(c) => filter.nominee = Some(c),
                None => {
                    return Ok(Response::new(pb::ListEscalationsResponse {
                        escalations: Vec::new(),
                        next_page_token: String::new(),
                        read_at: Some(to_timestamp(read_at.get())),
                    }));
                }
            }
        }
        let mut conn = self.db.read().await.map_err(EscalationError::from)?;
        let mut rows =
            store::list_escalations(&mut conn, &filter, after.map(|a| (a.0, a.1)), limit + 1)
                .await
                .map_err(EscalationError::from)?;
        let next_page_token = page::cut(&mut rows, limit, |r| {
            self.db.page_tokens().seal(
                scope.as_bytes(),
                &(r.opened_at, r.id, read_at.unix_micros()),
            )
        });
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let tiers = store::tiers_of(&mut conn, &ids)
            .await
            .map_err(EscalationError::from)?;
        let nominees = store::nominees_of_many(&mut conn, &ids)
            .await
            .map_err(EscalationError::from)?;
        let with_nominees = full(req.view, false);
        Ok(Response::new(pb::ListEscalationsResponse {
            escalations: rows
                .iter()
                .map(|r| escalation_to_wire(r, &tiers, &nominees, with_nominees))
                .collect(),
            next_page_token,
            read_at: Some(to_timestamp(read_at.get())),
        }))
    }

    async fn list_escalation_timeline(
        &self,
        r: Request<pb::ListEscalationTimelineRequest>,
    ) -> Reply<pb::ListEscalationTimelineResponse> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let id = parse_id(&mut v, "escalation_id", &req.escalation_id);
        let limit = page::size(&mut v, "page_size", req.page_size);
        let scope = format!("ListEscalationTimeline:{}", req.escalation_id);
        let after: Option<i32> = self
            .db
            .page_tokens()
            .open(scope.as_bytes(), &req.page_token)
            .unwrap_or_else(|e| {
                v.add("page_token", e);
                None
            });
        v.finish().map_err(EscalationError::Invalid)?;
        let id = id.unwrap_or_default();
        let viewer = self.viewer(&caller).await?;
        self.visible(&viewer, id).await?;
        let mut conn = self.db.read().await.map_err(EscalationError::from)?;
        let mut rows = store::timeline(&mut conn, id, after.unwrap_or(0), limit + 1)
            .await
            .map_err(EscalationError::from)?;
        let next_page_token = page::cut(&mut rows, limit, |t| {
            self.db.page_tokens().seal(scope.as_bytes(), &t.sequence)
        });
        Ok(Response::new(pb::ListEscalationTimelineResponse {
            entries: rows.iter().map(timeline_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn acknowledge_escalation(
        &self,
        r: Request<pb::AcknowledgeEscalationRequest>,
    ) -> Reply<pb::AcknowledgeEscalationResponse> {
        let caller = require_authenticated(&r)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        let id = parse_id(&mut v, "escalation_id", &req.escalation_id);
        let note = text(&mut v, "note", &req.note, 2_000, true);
        v.finish().map_err(EscalationError::Invalid)?;
        let id = id.unwrap_or_default();
        let viewer = self.viewer(&caller).await?;
        self.visible(&viewer, id).await?;
        let contact = viewer.contact.ok_or(EscalationError::NotNominee)?;
        let mut tx = self.db.begin().await.map_err(EscalationError::from)?;
        let ack = engine::acknowledge(&mut tx, id, contact, &caller.subject, &note, DbTime::now())
            .await?;
        let row = store::escalation(&mut tx, id)
            .await
            .map_err(EscalationError::from)?
            .ok_or(EscalationError::EscalationNotFound)?;
        let tiers = store::tiers_of(&mut tx, &[id])
            .await
            .map_err(EscalationError::from)?;
        let nominees = store::nominees_of(&mut tx, id)
            .await
            .map_err(EscalationError::from)?;
        tx.commit().await.map_err(EscalationError::from)?;
        if ack.recorded {
            tracing::info!(escalation_id = %id, contact_id = %contact, "escalation acknowledged");
        }
        Ok(Response::new(pb::AcknowledgeEscalationResponse {
            escalation: Some(escalation_to_wire(&row, &tiers, &nominees, true)),
            acknowledged_at: Some(to_timestamp(ack.at.get())),
            note: ack.note,
            recorded: ack.recorded,
        }))
    }
}
