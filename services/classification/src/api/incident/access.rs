//! Need to know (14.2.2): the incident's access list, granted and revoked by its officer
//! or a security advisor. A grant or revoke that changes nothing writes nothing; a retry
//! with the same key is answered as the first call was, even after the list changed.

use custos_kit::{
    auth::{self, Principal},
    error::{Violations, text},
    idempotency::{self, Key},
    page,
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1 as pb;
use prost::Message;
use tonic::{Request, Response, Status};

use super::{Changing, IncidentApi, Needs, Opened, change::Effects, parse_key, parse_subject};
use crate::{
    error::ClassificationError,
    incident::ActionKind,
    store::{self, AccessPage, AccessRow, IncidentKey},
};

fn access_to_wire(a: AccessRow, officer: Option<&str>) -> pb::IncidentAccess {
    pb::IncidentAccess {
        officer: officer == Some(a.subject.as_str()),
        subject: a.subject,
        granted_by: a.granted_by,
        granted_at: Some(to_timestamp(a.granted_at.get())),
    }
}

/// A grant or revoke as requested.
struct AccessChange {
    caller: Principal,
    key: IncidentKey,
    subject: String,
    reason: String,
    idempotency_key: String,
}

fn parse_change<T>(
    request: Request<T>,
    parts: impl FnOnce(T) -> (String, String, String, String),
) -> Result<AccessChange, Status> {
    let caller = auth::require_authenticated(&request)?.clone();
    let (id, subject, reason, idempotency_key) = parts(request.into_inner());
    let mut v = Violations::new();
    let key = parse_key(&mut v, "incident_id", &id);
    let subject = parse_subject(&mut v, "subject", &subject);
    let reason = text(&mut v, "reason", &reason, 2_000, true);
    idempotency::check(&mut v, "idempotency_key", &idempotency_key, true);
    v.finish().map_err(ClassificationError::from)?;
    Ok(AccessChange {
        caller,
        key: key.expect("checked"),
        subject,
        reason,
        idempotency_key,
    })
}

fn stored<M: Message + Default>(bytes: Vec<u8>) -> Result<M, ClassificationError> {
    M::decode(bytes.as_slice())
        .map_err(|_| ClassificationError::Corrupt("a stored response".into()))
}

impl IncidentApi {
    /// GrantIncidentAccess: the officer or an advisor. Closed incidents too: who may
    /// read the record is not a change of it.
    #[tracing::instrument(skip_all)]
    pub(super) async fn grant(
        &self,
        request: Request<pb::GrantIncidentAccessRequest>,
    ) -> Result<Response<pb::GrantIncidentAccessResponse>, Status> {
        let a = parse_change(request, |r| {
            (r.incident_id, r.subject, r.reason, r.idempotency_key)
        })?;
        let key = Key::new(&a.caller.subject, "GrantIncidentAccess", &a.idempotency_key);
        let fingerprint = idempotency::fingerprint(&(&a.subject, &a.reason));
        let needs = Needs::Change("give access to it");
        let c = match self
            .open_change(&a.caller, &a.key, needs, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => return Ok(Response::new(stored(bytes)?)),
            Opened::New(c) => c,
        };
        let Changing {
            mut tx,
            pending,
            row,
            ..
        } = *c;
        let mut effects = Effects::new();
        IncidentApi::give_access(
            &mut tx,
            &row,
            &a.caller.subject,
            &a.subject,
            &a.reason,
            &mut effects,
        )
        .await?;
        tx.append_events(&effects.events)
            .await
            .map_err(ClassificationError::from)?;
        let entry = store::access_entry(&mut tx, row.id, &a.subject)
            .await
            .map_err(ClassificationError::from)?
            .ok_or_else(|| {
                ClassificationError::Corrupt("an access just given is missing".into())
            })?;
        let response = pb::GrantIncidentAccessResponse {
            access: Some(access_to_wire(entry, row.officer.as_deref())),
        };
        idempotency::complete(&mut tx, pending, &response)
            .await
            .map_err(ClassificationError::from)?;
        tx.commit().await.map_err(ClassificationError::from)?;
        Ok(Response::new(response))
    }

    /// RevokeIncidentAccess: the officer or an advisor. The officer's own access goes only
    /// with a new officer.
    #[tracing::instrument(skip_all)]
    pub(super) async fn revoke(
        &self,
        request: Request<pb::RevokeIncidentAccessRequest>,
    ) -> Result<Response<pb::RevokeIncidentAccessResponse>, Status> {
        let a = parse_change(request, |r| {
            (r.incident_id, r.subject, r.reason, r.idempotency_key)
        })?;
        let key = Key::new(
            &a.caller.subject,
            "RevokeIncidentAccess",
            &a.idempotency_key,
        );
        let fingerprint = idempotency::fingerprint(&(&a.subject, &a.reason));
        let needs = Needs::Change("revoke access to it");
        let c = match self
            .open_change(&a.caller, &a.key, needs, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => return Ok(Response::new(stored(bytes)?)),
            Opened::New(c) => c,
        };
        let Changing {
            mut tx,
            pending,
            row,
            ..
        } = *c;
        if row.officer.as_deref() == Some(a.subject.as_str()) {
            return Err(ClassificationError::OfficerAccess.into());
        }
        let sequence = store::revoke(&mut tx, row.id, &a.subject)
            .await
            .map_err(ClassificationError::from)?;
        if let Some(sequence) = sequence {
            let effects = Effects::new();
            store::append_action(
                &mut tx,
                row.id,
                ActionKind::AccessRevoked,
                &a.reason,
                Some(&a.subject),
                &a.caller.subject,
                effects.at(),
            )
            .await
            .map_err(ClassificationError::from)?;
            tx.append_event(&custos_kit::outbox::NewEvent::new(
                row.id,
                row.reference.clone(),
                effects.now,
                &pb::IncidentAccessRevoked {
                    subject: a.subject.clone(),
                    access_sequence: sequence,
                    revoked_at: Some(to_timestamp(effects.now)),
                },
            ))
            .await
            .map_err(ClassificationError::from)?;
        }
        let response = pb::RevokeIncidentAccessResponse {
            revoked: sequence.is_some(),
        };
        idempotency::complete(&mut tx, pending, &response)
            .await
            .map_err(ClassificationError::from)?;
        tx.commit().await.map_err(ClassificationError::from)?;
        Ok(Response::new(response))
    }

    /// ListIncidentAccess: anyone who may see the incident.
    #[tracing::instrument(skip_all)]
    pub(super) async fn access_list(
        &self,
        request: Request<pb::ListIncidentAccessRequest>,
    ) -> Result<Response<pb::ListIncidentAccessResponse>, Status> {
        let caller = auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let key = parse_key(&mut v, "incident_id", &req.incident_id);
        let limit = page::size(&mut v, "page_size", req.page_size);
        v.finish().map_err(ClassificationError::from)?;
        let (row, rows, next_page_token) = self
            .child_page(
                &caller,
                &key.expect("checked"),
                "ListIncidentAccess",
                "incident.access.read",
                &req.page_token,
                limit,
                async |conn, id, after, limit| store::access_list(conn, id, after, limit).await,
                |r| AccessPage {
                    granted_at: r.granted_at,
                    subject: r.subject.clone(),
                },
            )
            .await?;
        Ok(Response::new(pb::ListIncidentAccessResponse {
            access: rows
                .into_iter()
                .map(|a| access_to_wire(a, row.officer.as_deref()))
                .collect(),
            next_page_token,
        }))
    }
}
