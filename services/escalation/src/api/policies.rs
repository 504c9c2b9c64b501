//! Escalation policies (DirectoryService): checked field by field, kept per trigger,
//! the shipped default where none is set.

use custos_kit::{
    auth::require_any,
    error::{FieldViolation, Violations},
    storage::{DbTime, Tx},
    time_fmt::to_timestamp,
};
use custos_proto::{escalation::v1 as pb, prost_types::Duration as PbDuration};
use time::Duration;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{DIRECTORY_READ, DIRECTORY_WRITE, DirectoryApi, parse_id};
use crate::{
    directory::{
        ListKind, MAX_DEADLINE, MAX_NOMINEES, MAX_REPEAT, MAX_TIERS, MIN_DEADLINE, MIN_REPEAT,
        Policy, Tier, Trigger, policy_problems,
    },
    error::EscalationError,
    store::{self, PolicyRow},
};

fn duration_to_wire(d: Duration) -> PbDuration {
    PbDuration {
        seconds: d.whole_seconds(),
        nanos: 0,
    }
}

/// A policy as the API shows it (`row`: the stored one; none: the shipped default).
pub(crate) fn policy_to_wire(trigger: Trigger, row: Option<&PolicyRow>) -> pb::EscalationPolicy {
    let default;
    let policy = match row {
        Some(r) => &r.policy.0,
        None => {
            default = Policy::default_for(trigger);
            &default
        }
    };
    pb::EscalationPolicy {
        trigger: trigger.to_wire(),
        tiers: policy
            .tiers
            .iter()
            .map(|t| pb::EscalationTier {
                contact_ids: t.contacts.iter().map(Uuid::to_string).collect(),
                lists: t.lists.iter().map(|l| l.to_wire()).collect(),
                response_deadline: Some(duration_to_wire(t.deadline())),
                reminder_before: t.reminder_before().map(duration_to_wire),
            })
            .collect(),
        single_accountable: policy.single_accountable,
        repeat_interval: Some(duration_to_wire(policy.repeat())),
        revision: row.map_or(0, |r| r.revision),
        updated_at: row.map(|r| to_timestamp(r.updated_at.get())),
        updated_by: row.map(|r| r.updated_by.clone()).unwrap_or_default(),
        problems: Vec::new(),
    }
}

/// A duration in whole seconds within bounds, or what is wrong with it.
fn duration(
    v: &mut Violations,
    field: &str,
    d: Option<&PbDuration>,
    min: Duration,
    max: Duration,
) -> Option<Duration> {
    let Some(d) = d else {
        v.add(field, "is required");
        return None;
    };
    if d.nanos != 0 {
        v.add(field, "must be whole seconds");
        return None;
    }
    let d = Duration::seconds(d.seconds);
    if d < min || d > max {
        v.add(field, format!("must be from {min} to {max}"));
        None
    } else {
        Some(d)
    }
}

/// The request's policy, checked on its own (contacts are checked against the
/// directory afterwards, in the transaction).
pub(crate) fn parse_policy(
    v: &mut Violations,
    p: &pb::EscalationPolicy,
) -> (Option<Trigger>, Policy) {
    let trigger = v.check("policy.trigger", Trigger::from_wire(p.trigger));
    if p.tiers.is_empty() || p.tiers.len() > MAX_TIERS {
        v.add("policy.tiers", format!("must have 1 to {MAX_TIERS} tiers"));
    }
    let mut tiers = Vec::new();
    for (i, t) in p.tiers.iter().enumerate() {
        let at = |f: &str| format!("policy.tiers[{i}].{f}");
        let mut contacts = Vec::new();
        if t.contact_ids.len() > MAX_NOMINEES {
            v.add(
                at("contact_ids"),
                format!("must name at most {MAX_NOMINEES} contacts"),
            );
        }
        for (j, raw) in t.contact_ids.iter().enumerate() {
            let field = at(&format!("contact_ids[{j}]"));
            if let Some(id) = parse_id(v, &field, raw) {
                if contacts.contains(&id) {
                    v.add(field, "is named twice in the tier");
                } else {
                    contacts.push(id);
                }
            }
        }
        let mut lists = Vec::new();
        for (j, raw) in t.lists.iter().enumerate() {
            let field = at(&format!("lists[{j}]"));
            if let Some(kind) = v.check(&field, ListKind::from_wire(*raw)) {
                if lists.contains(&kind) {
                    v.add(field, "is named twice in the tier");
                } else {
                    lists.push(kind);
                }
            }
        }
        let deadline = duration(
            v,
            &at("response_deadline"),
            t.response_deadline.as_ref(),
            MIN_DEADLINE,
            MAX_DEADLINE,
        );
        let reminder = match t.reminder_before.as_ref() {
            None => Some(Duration::ZERO),
            Some(r) if r.seconds == 0 && r.nanos == 0 => Some(Duration::ZERO),
            Some(r) => duration(
                v,
                &at("reminder_before"),
                Some(r),
                Duration::SECOND,
                MAX_DEADLINE,
            ),
        };
        if let (Some(d), Some(r)) = (deadline, reminder)
            && r >= d
        {
            v.add(at("reminder_before"), "must be less than response_deadline");
        }
        tiers.push(Tier {
            contacts,
            lists,
            deadline_secs: deadline.unwrap_or_default().whole_seconds(),
            reminder_before_secs: reminder.unwrap_or_default().whole_seconds(),
        });
    }
    if p.single_accountable {
        if p.tiers.len() != 1 {
            v.add(
                "policy.tiers",
                "a single accountable line has exactly one tier",
            );
        }
        if let Some(t) = p.tiers.first()
            && (t.contact_ids.len() != 1 || !t.lists.is_empty())
        {
            v.add(
                "policy.tiers[0]",
                "a single accountable line names exactly one contact, and no list",
            );
        }
    }
    let repeat = duration(
        v,
        "policy.repeat_interval",
        p.repeat_interval.as_ref(),
        MIN_REPEAT,
        MAX_REPEAT,
    );
    let policy = Policy {
        tiers,
        single_accountable: p.single_accountable,
        repeat_secs: repeat.unwrap_or_default().whole_seconds(),
    };
    (trigger, policy)
}

/// Who each tier of `policy` names now: whether each distinct active person can act.
pub(crate) async fn people(
    mut conn: impl custos_kit::storage::AsConn,
    policy: &Policy,
) -> Result<Vec<Vec<bool>>, EscalationError> {
    let mut people = Vec::new();
    for tier in &policy.tiers {
        let named = store::nominees(&mut conn, tier).await?;
        people.push(named.iter().map(|n| n.can_act).collect());
    }
    Ok(people)
}

/// Checks the policy's contacts (each active) and what it asks of the directory
/// (`directory::policy_problems`), naming the fields.
pub(crate) async fn check_against_directory(
    tx: &mut Tx,
    trigger: Trigger,
    policy: &Policy,
) -> Result<(), EscalationError> {
    let mut violations: Vec<FieldViolation> = Vec::new();
    for (i, tier) in policy.tiers.iter().enumerate() {
        match super::contacts::check_active(&mut *tx, &tier.contacts, |j| {
            format!("policy.tiers[{i}].contact_ids[{j}]")
        })
        .await
        {
            Ok(()) => {}
            Err(EscalationError::Invalid(mut v)) => violations.append(&mut v),
            Err(e) => return Err(e),
        }
    }
    if violations.is_empty() {
        let people = people(&mut *tx, policy).await?;
        violations.extend(policy_problems(trigger, policy, &people).into_iter().map(
            |(field, description)| FieldViolation {
                field: format!("policy.{field}"),
                description,
            },
        ));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(EscalationError::Invalid(violations))
    }
}

/// After a change of contacts or lists, in its transaction: every stored policy can
/// still be followed, or the change is refused (POLICY_NOMINEES).
pub(crate) async fn check_stored_policies(tx: &mut Tx) -> Result<(), EscalationError> {
    let mut problems = Vec::new();
    for row in store::policies(&mut *tx).await? {
        let people = people(&mut *tx, &row.policy.0).await?;
        for (field, problem) in policy_problems(row.trigger, &row.policy.0, &people) {
            problems.push((row.trigger, field, problem));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EscalationError::PolicyNominees(problems))
    }
}

impl DirectoryApi {
    pub(crate) async fn set_escalation_policy(
        &self,
        r: Request<pb::SetEscalationPolicyRequest>,
    ) -> Result<Response<pb::SetEscalationPolicyResponse>, Status> {
        let caller = require_any(&r, DIRECTORY_WRITE)?.clone();
        let req = r.into_inner();
        let mut v = Violations::new();
        if req.revision < 0 {
            v.add("revision", "must not be negative");
        }
        let (trigger, policy) = match &req.policy {
            Some(p) => parse_policy(&mut v, p),
            None => {
                v.add("policy", "is required");
                (None, Policy::default_for(Trigger::ReportReceived))
            }
        };
        v.finish().map_err(EscalationError::Invalid)?;
        let trigger = trigger.expect("checked");
        let mut tx = self.db.begin().await.map_err(EscalationError::from)?;
        store::lock_directory(&mut tx)
            .await
            .map_err(EscalationError::from)?;
        check_against_directory(&mut tx, trigger, &policy).await?;
        let now = DbTime::now();
        let Some(_) = store::set_policy(
            &mut tx,
            trigger,
            req.revision,
            &policy,
            now,
            &caller.subject,
        )
        .await
        .map_err(EscalationError::from)?
        else {
            drop(tx);
            let mut conn = self.db.read().await.map_err(EscalationError::from)?;
            let current = store::policy(&mut conn, trigger)
                .await
                .map_err(EscalationError::from)?
                .map_or(0, |p| p.revision);
            return Err(EscalationError::PolicyChanged {
                expected: req.revision,
                current,
            }
            .into());
        };
        let row = store::policy(&mut tx, trigger)
            .await
            .map_err(EscalationError::from)?;
        tx.commit().await.map_err(EscalationError::from)?;
        if let Err(e) = self
            .db
            .audit(
                &caller,
                "SetEscalationPolicy",
                "escalation_policy",
                &[trigger.name().to_owned()],
            )
            .await
        {
            tracing::error!(trigger = trigger.name(), by = %caller.subject, error = %custos_kit::error::DisplayChain(&e),
                "a policy change was made but could not be written to the audit trail");
        }
        tracing::info!(trigger = trigger.name(), by = %caller.subject, tiers = policy.tiers.len(), "escalation policy set");
        Ok(Response::new(pb::SetEscalationPolicyResponse {
            policy: Some(policy_to_wire(trigger, row.as_ref())),
        }))
    }

    pub(crate) async fn list_escalation_policies(
        &self,
        r: Request<pb::ListEscalationPoliciesRequest>,
    ) -> Result<Response<pb::ListEscalationPoliciesResponse>, Status> {
        require_any(&r, DIRECTORY_READ)?;
        let mut conn = self.db.read().await.map_err(EscalationError::from)?;
        let rows = store::policies(&mut conn)
            .await
            .map_err(EscalationError::from)?;
        let mut policies = Vec::new();
        for t in Trigger::ALL {
            let row = rows.iter().find(|r| r.trigger == *t);
            let mut wire = policy_to_wire(*t, row);
            let policy = row.map_or_else(|| Policy::default_for(*t), |r| r.policy.0.clone());
            let people = people(&mut conn, &policy).await?;
            wire.problems = policy_problems(*t, &policy, &people)
                .into_iter()
                .map(|(field, problem)| format!("{field}: {problem}"))
                .collect();
            policies.push(wire);
        }
        Ok(Response::new(pb::ListEscalationPoliciesResponse {
            policies,
        }))
    }
}
