//! A personal-data breach (UK GDPR Art. 33): when the organisation became aware of it,
//! which starts the 72 hours to tell the regulator, and the decision to tell it or not.
//! Every breach is recorded, reported or not (Art. 33(5)).

use custos_kit::{
    auth::{Principal, Role},
    error::{Violations, text},
    idempotency::{self, Key},
    storage::{DbTime, JsonText},
    time_fmt::to_timestamp,
};
use custos_proto::classification::v1 as pb;

use super::{
    IncidentApi, Needs, Opened, at_revision,
    change::{Effects, check_revision, replayed},
    not_closed, parse_key,
};
use crate::{
    error::ClassificationError,
    incident::{ActionKind, Breach, BreachDecision, Standing},
    store,
};

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// How far in the future a time of awareness may be (clocks differ a little).
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

impl IncidentApi {
    /// RecordBreachAwareness: the officer or an advisor.
    #[tracing::instrument(skip_all)]
    pub(super) async fn record_breach(
        &self,
        caller: &Principal,
        req: pb::RecordBreachAwarenessRequest,
    ) -> Result<pb::Incident, ClassificationError> {
        let mut v = Violations::new();
        let incident_key = parse_key(&mut v, "incident_id", &req.incident_id);
        check_revision(&mut v, req.revision);
        let aware_at = v.optional_time("aware_at", &req.aware_at);
        if req.aware_at.is_none() {
            v.add(
                "aware_at",
                "is required: when the organisation became aware of the breach",
            );
        } else if let Some(at) = aware_at
            && at.get() > time::OffsetDateTime::now_utc() + CLOCK_SKEW
        {
            v.add("aware_at", "must not be in the future");
        }
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        v.finish()?;
        let aware_at = aware_at.expect("checked");
        let key = Key::new(
            &caller.subject,
            "RecordBreachAwareness",
            &req.idempotency_key,
        );
        let fingerprint = idempotency::fingerprint(&(req.revision, aware_at));
        let needs = Needs::Change("record a personal-data breach");
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
        if c.row
            .breach
            .as_ref()
            .is_some_and(|b| b.decision().is_some())
        {
            return Err(ClassificationError::BreachDecided);
        }
        let earlier = c.row.breach.as_ref().map(|b| b.aware_at);
        if earlier == Some(aware_at) {
            // Recorded already, as it is: nothing changes.
            let super::Changing {
                mut tx,
                pending,
                row,
                ..
            } = *c;
            let wire = super::incident_to_wire(row);
            idempotency::complete(&mut tx, pending, &wire).await?;
            tx.commit().await?;
            return Ok(wire);
        }
        let mut effects = Effects::new();
        let breach = Breach {
            aware_at,
            recorded_by: caller.subject.clone(),
            decision: None,
            decision_reason: String::new(),
            regulator_reference: String::new(),
            decided_by: String::new(),
            decided_at: None,
        };
        let due = breach.report_due_at();
        c.row.breach = Some(JsonText(breach));
        // A breach of personal data involves personal data: its reads are audited.
        let raised = !c.row.personal_data;
        c.row.personal_data = true;
        Self::save(&mut c.tx, &mut c.row, effects.at()).await?;
        let detail = format!(
            "aware of a personal-data breach at {}{}; the regulator must be told by {} \
             unless it is decided not to{}",
            rfc3339(aware_at.get()),
            earlier
                .map(|e| format!(" (corrected from {})", rfc3339(e.get())))
                .unwrap_or_default(),
            rfc3339(due),
            if raised {
                "; it raised flags.personal_data"
            } else {
                ""
            }
        );
        store::append_action(
            &mut c.tx,
            c.row.id,
            ActionKind::BreachRecorded,
            &detail,
            None,
            &caller.subject,
            effects.at(),
        )
        .await?;
        effects.event(
            &c.row,
            &pb::IncidentBreachRecorded {
                aware_at: Some(to_timestamp(aware_at.get())),
                report_due_at: Some(to_timestamp(due)),
                revision: c.row.revision,
            },
        );
        if raised {
            effects.event(
                &c.row,
                &pb::IncidentFlagsChanged {
                    flags: Some(c.row.flags().to_wire()),
                    revision: c.row.revision,
                    changed_at: Some(to_timestamp(effects.now)),
                    overall_level: c.row.overall_level.to_wire(),
                },
            );
        }
        self.finish(c, caller, "incident.breach", effects, true)
            .await
    }

    /// DecideBreachNotification: the officer, an advisor, or a DPO on the access list.
    #[tracing::instrument(skip_all)]
    pub(super) async fn decide_breach(
        &self,
        caller: &Principal,
        req: pb::DecideBreachNotificationRequest,
    ) -> Result<pb::Incident, ClassificationError> {
        let mut v = Violations::new();
        let incident_key = parse_key(&mut v, "incident_id", &req.incident_id);
        check_revision(&mut v, req.revision);
        let decision = v.check("decision", BreachDecision::from_wire(req.decision));
        let reason = text(&mut v, "reason", &req.reason, 10_000, true);
        let reference = text(
            &mut v,
            "regulator_reference",
            &req.regulator_reference,
            200,
            false,
        );
        if decision == Some(BreachDecision::DoNotNotify) && !reference.is_empty() {
            v.add(
                "regulator_reference",
                "is the regulator's reference for a report: only with NOTIFY",
            );
        }
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        v.finish()?;
        let decision = decision.expect("checked");
        let key = Key::new(
            &caller.subject,
            "DecideBreachNotification",
            &req.idempotency_key,
        );
        let fingerprint =
            idempotency::fingerprint(&(req.revision, decision.name(), &reason, &reference));
        let incident_key = incident_key.expect("checked");
        let mut c = match self
            .open_change(caller, &incident_key, Needs::Act, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => return replayed(bytes),
            Opened::New(c) => c,
        };
        let dpo = caller.has_any(&[Role::Dpo]) && c.standing == Standing::Listed;
        if !c.standing.changes() && !dpo {
            return Err(ClassificationError::NotIncidentOfficer(
                "decide about telling the regulator (or a data protection officer on its \
                 access list)",
            ));
        }
        not_closed(&c.row)?;
        at_revision(&c.row, req.revision)?;
        let mut effects = Effects::new();
        let at: DbTime = effects.at();
        let Some(JsonText(breach)) = c.row.breach.as_mut() else {
            return Err(ClassificationError::BreachNotRecorded);
        };
        let again = breach.decision().is_some();
        if breach.decision() == Some(BreachDecision::Notify)
            && decision == BreachDecision::DoNotNotify
        {
            return Err(ClassificationError::BreachNotified);
        }
        breach.decision = Some(decision.name().to_owned());
        breach.decision_reason = reason.clone();
        // A decision made again without the regulator's reference keeps the one known.
        if !reference.is_empty() {
            breach.regulator_reference = reference;
        }
        breach.decided_by = caller.subject.clone();
        breach.decided_at = Some(at);
        Self::save(&mut c.tx, &mut c.row, at).await?;
        let detail = format!(
            "{}{}: {reason}",
            if again { "decided again: " } else { "" },
            match decision {
                BreachDecision::Notify => "the regulator is told",
                BreachDecision::DoNotNotify => "the regulator is not told",
            }
        );
        store::append_action(
            &mut c.tx,
            c.row.id,
            ActionKind::BreachRecorded,
            &detail,
            None,
            &caller.subject,
            at,
        )
        .await?;
        effects.event(
            &c.row,
            &pb::IncidentBreachDecided {
                decision: decision.to_wire(),
                revision: c.row.revision,
                decided_at: Some(to_timestamp(effects.now)),
            },
        );
        self.finish(c, caller, "incident.breach", effects, true)
            .await
    }
}
