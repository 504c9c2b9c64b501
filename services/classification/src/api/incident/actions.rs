//! The actions log (14.2.2): what was done about an incident, by whom and when, appended
//! by the people working on it and by the register itself; never changed.

use custos_kit::{
    auth,
    error::{Violations, text},
    idempotency::{self, Key},
    page,
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1 as pb;
use prost::Message;
use tonic::{Request, Response, Status};

use super::{IncidentApi, Needs, Opened, not_closed, parse_key};
use crate::{
    error::ClassificationError,
    incident::ActionKind,
    store::{self, ActionRow},
};

fn action_to_wire(a: ActionRow) -> pb::IncidentAction {
    pb::IncidentAction {
        id: a.id.to_string(),
        sequence: a.sequence,
        kind: a.kind.to_wire(),
        detail: a.detail,
        actor: a.actor,
        recorded_at: Some(to_timestamp(a.recorded_at.get())),
        subject: a.subject.unwrap_or_default(),
    }
}

impl IncidentApi {
    /// AddIncidentAction: anyone on the access list, the officer, or an advisor.
    #[tracing::instrument(skip_all)]
    pub(super) async fn add_action(
        &self,
        request: Request<pb::AddIncidentActionRequest>,
    ) -> Result<Response<pb::AddIncidentActionResponse>, Status> {
        let caller = auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let incident_key = parse_key(&mut v, "incident_id", &req.incident_id);
        let kind = v.check("kind", ActionKind::from_wire(req.kind));
        if let Some(k) = kind
            && !k.is_step()
        {
            v.add(
                "kind",
                format!(
                    "{} is recorded by the register itself: add one of the steps \
                     IDENTIFICATION, LIMITING_IMPACT, CONTAINMENT, CORRECTIVE_ACTION, \
                     COMMUNICATION or RECOVERY",
                    k.name()
                ),
            );
        }
        let detail = text(&mut v, "detail", &req.detail, 10_000, true);
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        v.finish().map_err(ClassificationError::from)?;
        let (incident_key, kind) = (incident_key.expect("checked"), kind.expect("checked"));
        let key = Key::new(&caller.subject, "AddIncidentAction", &req.idempotency_key);
        let fingerprint = idempotency::fingerprint(&(kind.name(), &detail));
        let c = match self
            .open_change(&caller, &incident_key, Needs::Act, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => {
                return Ok(Response::new(
                    pb::AddIncidentActionResponse::decode(bytes.as_slice())
                        .map_err(|_| ClassificationError::Corrupt("a stored response".into()))?,
                ));
            }
            Opened::New(c) => c,
        };
        not_closed(&c.row)?;
        let super::Changing {
            mut tx,
            pending,
            row,
            ..
        } = *c;
        let at = custos_kit::storage::DbTime::now();
        let action =
            store::append_action(&mut tx, row.id, kind, &detail, None, &caller.subject, at)
                .await
                .map_err(ClassificationError::from)?;
        if row.personal_data {
            custos_kit::audit::record(
                &mut tx,
                &caller,
                "incident.action",
                "incident",
                &[row.id.to_string()],
            )
            .await
            .map_err(ClassificationError::from)?;
        }
        let response = pb::AddIncidentActionResponse {
            action: Some(action_to_wire(action)),
        };
        idempotency::complete(&mut tx, pending, &response)
            .await
            .map_err(ClassificationError::from)?;
        tx.commit().await.map_err(ClassificationError::from)?;
        Ok(Response::new(response))
    }

    /// ListIncidentActions: anyone who may see the incident.
    #[tracing::instrument(skip_all)]
    pub(super) async fn actions(
        &self,
        request: Request<pb::ListIncidentActionsRequest>,
    ) -> Result<Response<pb::ListIncidentActionsResponse>, Status> {
        let caller = auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let key = parse_key(&mut v, "incident_id", &req.incident_id);
        let mut kinds = Vec::new();
        if req.kinds.len() > ActionKind::ALL.len() {
            v.add("kinds", format!("at most {} kinds", ActionKind::ALL.len()));
        }
        for (i, k) in req.kinds.iter().enumerate() {
            if let Some(k) = v.check(&format!("kinds[{i}]"), ActionKind::from_wire(*k))
                && !kinds.contains(&k)
            {
                kinds.push(k);
            }
        }
        kinds.sort_by_key(|k| k.to_wire());
        let limit = page::size(&mut v, "page_size", req.page_size);
        v.finish().map_err(ClassificationError::from)?;
        let (_, rows, next_page_token) = self
            .child_page(
                &caller,
                &key.expect("checked"),
                &format!("ListIncidentActions {kinds:?}"),
                "incident.actions.read",
                &req.page_token,
                limit,
                async |conn, id, after, limit| store::actions(conn, id, &kinds, after, limit).await,
                |r| r.sequence,
            )
            .await?;
        Ok(Response::new(pb::ListIncidentActionsResponse {
            actions: rows.into_iter().map(action_to_wire).collect(),
            next_page_token,
        }))
    }
}
