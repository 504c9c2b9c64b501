//! GetIncident and ListIncidents. An incident that involves personal data is written to
//! the audit trail, and the entry committed, before it is returned.

use custos_kit::{
    auth::{self, Principal},
    error::Violations,
    page,
    storage::{Read, StorageError},
};
use custos_proto::classification::v1 as pb;
use tonic::{Request, Response, Status};

use super::{IncidentApi, incident_to_wire, parse_key};
use crate::{
    error::ClassificationError,
    incident::{IncidentState, SEE_ALL},
    matrix::Level,
    store::{self, IncidentFilter, IncidentPage, RegisterRow},
};

impl IncidentApi {
    /// Writes the reads of those of `rows` that involve personal data to the audit trail;
    /// returns once the entries have committed (if they cannot be, the read fails).
    pub(super) async fn audit_reads(
        &self,
        caller: &Principal,
        action: &str,
        rows: &[&RegisterRow],
    ) -> Result<(), ClassificationError> {
        let ids: Vec<String> = rows
            .iter()
            .filter(|r| r.personal_data)
            .map(|r| r.id.to_string())
            .collect();
        if !ids.is_empty() {
            self.db.audit(caller, action, "incident", &ids).await?;
        }
        Ok(())
    }

    /// An incident the caller may see, read on `conn`; INCIDENT_NOT_FOUND for one that
    /// does not exist and for one they may not see alike.
    pub(super) async fn visible(
        &self,
        conn: impl custos_kit::storage::AsConn,
        caller: &Principal,
        key: &store::IncidentKey,
    ) -> Result<RegisterRow, ClassificationError> {
        let seen = store::incident_for(conn, key, &caller.subject)
            .await?
            .ok_or_else(super::not_found)?;
        super::standing(caller, &seen)?;
        Ok(seen.row)
    }

    /// One page of one of an incident's own lists (access, actions, impacts, costs), for
    /// anyone who may see the incident: the check and the read on one connection, the
    /// page token bound to the incident and to `list` (the method and its filter), and
    /// the read audited (as `audit_action`) once the connection is back in the pool, for
    /// the audit writer may need it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn child_page<P, R>(
        &self,
        caller: &Principal,
        key: &store::IncidentKey,
        list: &str,
        audit_action: &str,
        page_token: &str,
        limit: i64,
        read: impl AsyncFnOnce(&mut Read, uuid::Uuid, Option<P>, i64) -> Result<Vec<R>, StorageError>,
        position: impl Fn(&R) -> P,
    ) -> Result<(RegisterRow, Vec<R>, String), ClassificationError>
    where
        P: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut conn = self.db.read().await?;
        let row = self.visible(&mut conn, caller, key).await?;
        let scope = format!("{list} {}", row.id);
        let tokens = self.db.page_tokens();
        let mut v = Violations::new();
        let after = v
            .check("page_token", tokens.open::<P>(scope.as_bytes(), page_token))
            .flatten();
        v.finish()?;
        let mut rows = read(&mut conn, row.id, after, limit + 1).await?;
        let next_page_token = page::cut(&mut rows, limit, |r| {
            tokens.seal(scope.as_bytes(), &position(r))
        });
        drop(conn);
        self.audit_reads(caller, audit_action, &[&row]).await?;
        Ok((row, rows, next_page_token))
    }

    /// Any authenticated caller who may see the incident.
    #[tracing::instrument(skip_all, fields(incident_id))]
    pub(super) async fn get(
        &self,
        request: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::GetIncidentResponse>, Status> {
        let caller = auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let key = parse_key(&mut v, "incident_id", &req.incident_id);
        v.finish().map_err(ClassificationError::from)?;
        let mut conn = self.db.lookup().await.map_err(ClassificationError::from)?;
        let row = self
            .visible(&mut conn, &caller, &key.expect("checked"))
            .await?;
        drop(conn);
        tracing::Span::current().record("incident_id", tracing::field::display(row.id));
        self.audit_reads(&caller, "incident.read", &[&row]).await?;
        Ok(Response::new(pb::GetIncidentResponse {
            incident: Some(incident_to_wire(row)),
        }))
    }

    /// Any authenticated caller: the incidents they may see.
    #[tracing::instrument(skip_all)]
    pub(super) async fn list(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        let caller = auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let f = req.filter.unwrap_or_default();
        let mut v = Violations::new();
        let filter = parse_filter(&mut v, &f);
        let limit = page::size(&mut v, "page_size", req.page_size);
        // Advisors and services see the whole register; anyone else what their access
        // lists give them.
        let viewer = (!caller.has_any(SEE_ALL)).then(|| caller.subject.clone());
        // A token is bound to the filter and to whose view it pages through.
        let scope = format!("ListIncidents {filter:?} {viewer:?}");
        let tokens = self.db.page_tokens();
        let after = v
            .check(
                "page_token",
                tokens.open::<IncidentPage>(scope.as_bytes(), &req.page_token),
            )
            .flatten();
        v.finish().map_err(ClassificationError::from)?;

        let conn = self.db.read().await.map_err(ClassificationError::from)?;
        let mut rows = store::list_incidents(conn, &filter, viewer.as_deref(), after, limit + 1)
            .await
            .map_err(ClassificationError::from)?;
        let next_page_token = page::cut(&mut rows, limit, |r| {
            tokens.seal(
                scope.as_bytes(),
                &IncidentPage {
                    declared_at: r.declared_at,
                    id: r.id,
                },
            )
        });
        self.audit_reads(&caller, "incident.list", &rows.iter().collect::<Vec<_>>())
            .await?;
        Ok(Response::new(pb::ListIncidentsResponse {
            incidents: rows.into_iter().map(incident_to_wire).collect(),
            next_page_token,
        }))
    }
}

fn parse_filter(v: &mut Violations, f: &pb::IncidentFilter) -> IncidentFilter {
    let mut states = Vec::new();
    if f.states.len() > IncidentState::ALL.len() {
        v.add("filter.states", "at most 6 states");
    }
    for (i, s) in f.states.iter().enumerate() {
        if let Some(s) = v.check(&format!("filter.states[{i}]"), IncidentState::from_wire(*s))
            && !states.contains(&s)
        {
            states.push(s);
        }
    }
    let mut levels = Vec::new();
    if f.levels.len() > 3 {
        v.add("filter.levels", "at most 3 levels");
    }
    for (i, l) in f.levels.iter().enumerate() {
        if let Some(l) = v.check(&format!("filter.levels[{i}]"), Level::from_wire(*l))
            && !levels.contains(&l)
        {
            levels.push(l);
        }
    }
    if f.categories.len() > 50 {
        v.add("filter.categories", "at most 50 categories");
    } else {
        for (i, c) in f.categories.iter().enumerate() {
            if c.is_empty() || c.chars().count() > 64 {
                v.add(
                    format!("filter.categories[{i}]"),
                    "must be a category code (1 to 64 characters)",
                );
            }
        }
    }
    let officer = f.officer.trim();
    if officer.chars().count() > 200 {
        v.add("filter.officer", "must be at most 200 characters");
    }
    states.sort_by_key(|s| s.to_wire());
    levels.sort_by_key(|l| l.to_wire());
    let mut categories = f.categories.clone();
    categories.sort();
    categories.dedup();
    IncidentFilter {
        states,
        levels,
        categories,
        service_affecting: f.service_affecting,
        personal_data: f.personal_data,
        officer: (!officer.is_empty()).then(|| officer.to_owned()),
        declared_after: v.optional_time("filter.declared_after", &f.declared_after),
        declared_before: v.optional_time("filter.declared_before", &f.declared_before),
    }
}
