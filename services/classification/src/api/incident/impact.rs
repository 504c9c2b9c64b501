//! The officer's risk assessment of the incident with the matrix (14.2.2), kept as a
//! history; a change of the overall level is an event, since routing follows it (14.2).

use custos_kit::{
    auth::Principal,
    error::{Violations, text},
    idempotency::{self, Key},
    page,
    storage::JsonText,
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1 as pb;
use tonic::{Request, Response, Status};

use super::{
    IncidentApi, Needs, Opened, at_revision,
    change::{Effects, check_revision, replayed},
    not_closed, parse_key,
};
use crate::{
    api::matrix::{parse_choices, parse_figures},
    assessment::{GivenFigures, Impact},
    error::ClassificationError,
    incident::ActionKind,
    store::{self, ImpactRow},
};

fn impact_to_wire(r: ImpactRow) -> pb::IncidentImpact {
    pb::IncidentImpact {
        sequence: r.sequence,
        figures: Some(r.impact.figures.to_wire()),
        impact: Some(r.impact.to_wire()),
        reason: r.reason,
        assessed_by: r.assessed_by,
        assessed_at: Some(to_timestamp(r.assessed_at.get())),
    }
}

impl IncidentApi {
    /// ReassessIncidentImpact: the officer or an advisor.
    #[tracing::instrument(skip_all)]
    pub(super) async fn reassess(
        &self,
        caller: &Principal,
        req: pb::ReassessIncidentImpactRequest,
    ) -> Result<pb::Incident, ClassificationError> {
        let m = &self.matrix;
        let mut v = Violations::new();
        let incident_key = parse_key(&mut v, "incident_id", &req.incident_id);
        check_revision(&mut v, req.revision);
        let given = req.figures.clone().unwrap_or_default();
        let figures = parse_figures(&mut v, m, given.clone());
        let chosen = parse_choices(&mut v, m, &req.choices);
        let reason = text(&mut v, "reason", &req.reason, 2_000, true);
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        v.finish()?;
        let score = m.score(&figures, &chosen).map_err(|unscored| {
            ClassificationError::unscored(
                unscored
                    .iter()
                    .map(|&d| m.dimensions[d].code.clone())
                    .collect(),
            )
        })?;
        let given = GivenFigures::from_wire(&given);
        let mut choices: Vec<(String, String)> = req
            .choices
            .iter()
            .map(|c| (c.dimension.clone(), c.row.clone()))
            .collect();
        choices.sort();
        let key = Key::new(
            &caller.subject,
            "ReassessIncidentImpact",
            &req.idempotency_key,
        );
        let fingerprint = idempotency::fingerprint(&(req.revision, &given, &choices, &reason));
        let impact = Impact::new(m, &self.matrix_revision, &score, given);
        let needs = Needs::Change("assess its impact");
        let incident_key = incident_key.expect("checked");
        let mut c = match self
            .open_change(caller, &incident_key, needs, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => return replayed(bytes),
            Opened::New(c) => c,
        };
        not_closed(&c.row)?;
        at_revision(&c.row, req.revision)?;
        let mut effects = Effects::new();
        let from = c.row.overall_level;
        c.row.overall_level = impact.overall;
        c.row.impact = JsonText(impact.clone());
        Self::save(&mut c.tx, &mut c.row, effects.at()).await?;
        store::append_impact(
            &mut c.tx,
            c.row.id,
            &impact,
            &reason,
            &caller.subject,
            effects.at(),
        )
        .await?;
        let detail = format!(
            "overall {} → {}: {reason}",
            from.as_str(),
            impact.overall.as_str()
        );
        store::append_action(
            &mut c.tx,
            c.row.id,
            ActionKind::ImpactAssessed,
            &detail,
            None,
            &caller.subject,
            effects.at(),
        )
        .await?;
        if from != impact.overall {
            effects.event(
                &c.row,
                &pb::IncidentLevelChanged {
                    from: from.to_wire(),
                    to: impact.overall.to_wire(),
                    revision: c.row.revision,
                    changed_at: Some(to_timestamp(effects.now)),
                },
            );
        }
        self.finish(c, caller, "incident.impact", effects, false)
            .await
    }

    /// ListIncidentImpacts: anyone who may see the incident.
    #[tracing::instrument(skip_all)]
    pub(super) async fn impacts(
        &self,
        request: Request<pb::ListIncidentImpactsRequest>,
    ) -> Result<Response<pb::ListIncidentImpactsResponse>, Status> {
        let caller = custos_kit::auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let key = parse_key(&mut v, "incident_id", &req.incident_id);
        let limit = page::size(&mut v, "page_size", req.page_size);
        v.finish().map_err(ClassificationError::from)?;
        let (_, rows, next_page_token) = self
            .child_page(
                &caller,
                &key.expect("checked"),
                "ListIncidentImpacts",
                "incident.impacts.read",
                &req.page_token,
                limit,
                async |conn, id, after, limit| store::impacts(conn, id, after, limit).await,
                |r| r.sequence,
            )
            .await?;
        Ok(Response::new(pb::ListIncidentImpactsResponse {
            impacts: rows.into_iter().map(impact_to_wire).collect(),
            next_page_token,
        }))
    }
}
