//! Learning from the incident (14.2.3): the post-incident review, recorded by the officer
//! or an advisor once the incident is resolved, and approved by closing it.

use custos_kit::{
    auth::{Principal, Role},
    error::{Violations, text},
    idempotency::{self, Key},
    storage::JsonText,
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1 as pb;

use super::{
    IncidentApi, Needs, Opened, at_revision,
    change::{Effects, Move, check_revision, replayed, with_note},
    not_closed, parse_key,
};
use crate::{
    error::ClassificationError,
    incident::{ActionKind, IncidentState, Review, Standing},
};

/// A list of short texts: at most 50, each at most 2,000 characters, blanks dropped.
fn texts(v: &mut Violations, field: &str, given: &[String]) -> Vec<String> {
    if given.len() > 50 {
        v.add(field, "at most 50");
        return Vec::new();
    }
    given
        .iter()
        .enumerate()
        .map(|(i, t)| text(v, &format!("{field}[{i}]"), t, 2_000, false))
        .filter(|t| !t.is_empty())
        .collect()
}

impl IncidentApi {
    /// RecordIncidentReview: the officer or an advisor, on a RESOLVED incident.
    #[tracing::instrument(skip_all)]
    pub(super) async fn record_review(
        &self,
        caller: &Principal,
        req: pb::RecordIncidentReviewRequest,
    ) -> Result<pb::Incident, ClassificationError> {
        let mut v = Violations::new();
        let incident_key = parse_key(&mut v, "incident_id", &req.incident_id);
        check_revision(&mut v, req.revision);
        let root_cause = text(&mut v, "root_cause", &req.root_cause, 10_000, true);
        let vulnerabilities = texts(
            &mut v,
            "vulnerabilities_exploited",
            &req.vulnerabilities_exploited,
        );
        let lessons = text(&mut v, "lessons", &req.lessons, 10_000, true);
        let process_changes = texts(&mut v, "process_changes", &req.process_changes);
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        v.finish()?;
        let key = Key::new(
            &caller.subject,
            "RecordIncidentReview",
            &req.idempotency_key,
        );
        let fingerprint = idempotency::fingerprint(&(
            req.revision,
            &root_cause,
            &vulnerabilities,
            &lessons,
            &process_changes,
        ));
        let needs = Needs::Change("record its post-incident review");
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
        if c.row.state != IncidentState::Resolved {
            return Err(ClassificationError::ReviewNotDue { state: c.row.state });
        }
        let effects = Effects::new();
        let replaced = c.row.review.is_some();
        c.row.review = Some(JsonText(Review {
            root_cause,
            vulnerabilities_exploited: vulnerabilities,
            lessons,
            process_changes,
            recorded_by: caller.subject.clone(),
            recorded_at: effects.at(),
            approved_by: String::new(),
            approved_at: None,
        }));
        Self::save(&mut c.tx, &mut c.row, effects.at()).await?;
        let detail = if replaced {
            "post-incident review recorded again (it replaces the one before)"
        } else {
            "post-incident review recorded"
        };
        crate::store::append_action(
            &mut c.tx,
            c.row.id,
            ActionKind::ReviewRecorded,
            detail,
            None,
            &caller.subject,
            effects.at(),
        )
        .await?;
        self.finish(c, caller, "incident.review", effects, false)
            .await
    }

    /// CloseIncident: approves the review and closes. A security advisor, or the policy
    /// owner on the incident's access list.
    #[tracing::instrument(skip_all)]
    pub(super) async fn close(
        &self,
        caller: &Principal,
        m: Move,
    ) -> Result<pb::Incident, ClassificationError> {
        let key = Key::new(&caller.subject, "CloseIncident", &m.idempotency_key);
        let fingerprint = idempotency::fingerprint(&(m.revision, &m.note));
        let mut c = match self
            .open_change(caller, &m.key, Needs::Act, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => return replayed(bytes),
            Opened::New(c) => c,
        };
        not_closed(&c.row)?;
        // Someone other than the officer, and other than the review's author, approves.
        let approver = c.standing == Standing::Advisor
            || (caller.has_any(&[Role::PolicyOwner]) && c.standing == Standing::Listed);
        let author = c
            .row
            .review
            .as_ref()
            .is_some_and(|r| r.recorded_by == caller.subject);
        if !approver || author {
            return Err(ClassificationError::ApproverRequired);
        }
        at_revision(&c.row, m.revision)?;
        let from = c.row.state;
        if from != IncidentState::Resolved {
            return Err(ClassificationError::IncidentState {
                state: from,
                wanted: IncidentState::Closed,
            });
        }
        if c.row
            .breach
            .as_ref()
            .is_some_and(|b| b.decision().is_none())
        {
            return Err(ClassificationError::BreachUndecided);
        }
        let mut effects = Effects::new();
        let Some(JsonText(review)) = c.row.review.as_mut() else {
            return Err(ClassificationError::ReviewRequired);
        };
        review.approved_by = caller.subject.clone();
        review.approved_at = Some(effects.at());
        c.row.state = IncidentState::Closed;
        c.row.closed_at = Some(effects.at());
        Self::save(&mut c.tx, &mut c.row, effects.at()).await?;
        let detail = with_note(
            format!(
                "{} → {}, post-incident review approved",
                from.name(),
                IncidentState::Closed.name()
            ),
            &m.note,
        );
        crate::store::append_action(
            &mut c.tx,
            c.row.id,
            ActionKind::StateChanged,
            &detail,
            None,
            &caller.subject,
            effects.at(),
        )
        .await?;
        effects.event(
            &c.row,
            &pb::IncidentStateChanged {
                from: from.to_wire(),
                to: IncidentState::Closed.to_wire(),
                revision: c.row.revision,
                changed_at: Some(to_timestamp(effects.now)),
            },
        );
        self.finish(c, caller, "incident.state", effects, false)
            .await
    }
}
