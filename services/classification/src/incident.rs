//! The incident register's domain (policy 14.2): the lifecycle and its one legal move
//! from each state, the actions log's kinds, an incident's flags, and who may see and
//! change an incident (need to know, 14.2.2).

use custos_kit::{
    auth::{Principal, Role},
    storage::DbTime,
};
use custos_proto::classification::v1 as pb;
use serde::{Deserialize, Serialize};

custos_kit::wire_enum!(
    /// Where an incident stands (14.2.2). Stored values: never renumber one.
    IncidentState, pb::incident::State, "an incident state", {
    Open = 1 => Open,
    Investigating = 2 => Investigating,
    Contained = 3 => Contained,
    Recovering = 4 => Recovering,
    Resolved = 5 => Resolved,
    Closed = 6 => Closed,
});

impl IncidentState {
    /// The one state the lifecycle allows next; none after CLOSED.
    pub fn next(self) -> Option<IncidentState> {
        Some(match self {
            IncidentState::Open => IncidentState::Investigating,
            IncidentState::Investigating => IncidentState::Contained,
            IncidentState::Contained => IncidentState::Recovering,
            IncidentState::Recovering => IncidentState::Resolved,
            IncidentState::Resolved => IncidentState::Closed,
            IncidentState::Closed => return None,
        })
    }

    /// The verb that moves an incident into this state.
    pub fn verb(self) -> &'static str {
        match self {
            IncidentState::Open => "declared by AssessReport",
            IncidentState::Investigating => "InvestigateIncident",
            IncidentState::Contained => "ContainIncident",
            IncidentState::Recovering => "RecoverIncident",
            IncidentState::Resolved => "ResolveIncident",
            IncidentState::Closed => "CloseIncident",
        }
    }
}

custos_kit::wire_enum!(
    /// What an entry of the actions log records. Stored values: never renumber one.
    ActionKind, pb::IncidentActionKind, "an action kind", {
    Identification = 1 => Identification,
    LimitingImpact = 2 => LimitingImpact,
    Containment = 3 => Containment,
    CorrectiveAction = 4 => CorrectiveAction,
    Communication = 5 => Communication,
    Recovery = 6 => Recovery,
    StateChanged = 7 => StateChanged,
    DetailsChanged = 8 => DetailsChanged,
    OfficerAssigned = 9 => OfficerAssigned,
    AccessGranted = 10 => AccessGranted,
    AccessRevoked = 11 => AccessRevoked,
    ReportLinked = 12 => ReportLinked,
    ImpactAssessed = 13 => ImpactAssessed,
    BreachRecorded = 14 => BreachRecorded,
    CostAdded = 15 => CostAdded,
    ReviewRecorded = 16 => ReviewRecorded,
});

custos_kit::wire_enum!(
    /// Whether a personal-data breach is reported to the regulator.
    BreachDecision, pb::BreachDecision, "NOTIFY or DO_NOT_NOTIFY", {
    Notify = 1 => Notify,
    DoNotNotify = 2 => DoNotNotify,
});

/// How long after awareness the regulator must have been told (UK GDPR Art. 33(1)).
pub const BREACH_REPORT_WITHIN: time::Duration = time::Duration::hours(72);

/// A personal-data breach as recorded: awareness, then the decision about the regulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    pub aware_at: DbTime,
    pub recorded_by: String,
    /// Stored as the wire name (`BREACH_DECISION_NOTIFY`); none until decided.
    #[serde(default)]
    pub decision: Option<String>,
    #[serde(default)]
    pub decision_reason: String,
    #[serde(default)]
    pub regulator_reference: String,
    #[serde(default)]
    pub decided_by: String,
    #[serde(default)]
    pub decided_at: Option<DbTime>,
}

impl Breach {
    pub fn report_due_at(&self) -> time::OffsetDateTime {
        self.aware_at.get() + BREACH_REPORT_WITHIN
    }

    pub fn decision(&self) -> Option<BreachDecision> {
        let name = self.decision.as_deref()?;
        BreachDecision::ALL
            .iter()
            .copied()
            .find(|d| d.name() == name)
    }

    pub fn to_wire(&self) -> pb::PersonalDataBreach {
        let ts = |t: DbTime| custos_kit::time_fmt::to_timestamp(t.get());
        pb::PersonalDataBreach {
            aware_at: Some(ts(self.aware_at)),
            report_due_at: Some(custos_kit::time_fmt::to_timestamp(self.report_due_at())),
            recorded_by: self.recorded_by.clone(),
            decision: self.decision().map_or(0, BreachDecision::to_wire),
            decision_reason: self.decision_reason.clone(),
            regulator_reference: self.regulator_reference.clone(),
            decided_by: self.decided_by.clone(),
            decided_at: self.decided_at.map(ts),
        }
    }
}

/// A post-incident review (14.2.3) as recorded, and its approval.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Review {
    pub root_cause: String,
    pub vulnerabilities_exploited: Vec<String>,
    pub lessons: String,
    pub process_changes: Vec<String>,
    pub recorded_by: String,
    pub recorded_at: DbTime,
    #[serde(default)]
    pub approved_by: String,
    #[serde(default)]
    pub approved_at: Option<DbTime>,
}

impl Review {
    pub fn to_wire(&self) -> pb::PostIncidentReview {
        let ts = |t: DbTime| custos_kit::time_fmt::to_timestamp(t.get());
        pb::PostIncidentReview {
            root_cause: self.root_cause.clone(),
            vulnerabilities_exploited: self.vulnerabilities_exploited.clone(),
            lessons: self.lessons.clone(),
            process_changes: self.process_changes.clone(),
            recorded_by: self.recorded_by.clone(),
            recorded_at: Some(ts(self.recorded_at)),
            approved_by: self.approved_by.clone(),
            approved_at: self.approved_at.map(ts),
        }
    }
}

impl ActionKind {
    /// The steps of 14.2.2, which people add; the register records the rest itself.
    pub fn is_step(self) -> bool {
        matches!(
            self,
            ActionKind::Identification
                | ActionKind::LimitingImpact
                | ActionKind::Containment
                | ActionKind::CorrectiveAction
                | ActionKind::Communication
                | ActionKind::Recovery
        )
    }
}

/// What an incident involves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags {
    pub service_affecting: bool,
    /// Codes of the configured business services, sorted, without repeats.
    pub business_services: Vec<String>,
    pub personal_data: bool,
    pub paper_records: bool,
    pub evidence_required: bool,
}

impl Flags {
    pub fn to_wire(&self) -> pb::IncidentFlags {
        pb::IncidentFlags {
            service_affecting: self.service_affecting,
            business_services: self.business_services.clone(),
            personal_data: self.personal_data,
            paper_records: self.paper_records,
            evidence_required: self.evidence_required,
        }
    }
}

/// Roles that see every incident: advisors decide and classify, services act on them.
pub const SEE_ALL: &[Role] = &[Role::SecurityAdvisor, Role::Service];

/// How a caller stands to one incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A security advisor: sees and changes every incident.
    Advisor,
    /// A service: sees every incident, changes none.
    Service,
    /// The responsible officer: sees and changes it.
    Officer,
    /// On the access list: sees it and adds to its actions log.
    Listed,
    /// Anyone else: for them the incident does not exist.
    Stranger,
}

impl Standing {
    /// `officer`: the incident's officer; `listed`: the caller is on its access list.
    pub fn of(caller: &Principal, officer: Option<&str>, listed: bool) -> Standing {
        if caller.has_any(&[Role::SecurityAdvisor]) {
            Standing::Advisor
        } else if officer == Some(caller.subject.as_str()) {
            Standing::Officer
        } else if caller.has_any(&[Role::Service]) {
            Standing::Service
        } else if listed {
            Standing::Listed
        } else {
            Standing::Stranger
        }
    }

    pub fn sees(self) -> bool {
        self != Standing::Stranger
    }

    /// Changes the incident: its details, state, officer and access list.
    pub fn changes(self) -> bool {
        matches!(self, Standing::Advisor | Standing::Officer)
    }

    /// Adds to the actions log.
    pub fn acts(self) -> bool {
        matches!(
            self,
            Standing::Advisor | Standing::Officer | Standing::Listed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_kit::storage::DbEnum;

    #[test]
    fn the_lifecycle_runs_one_way_one_step_at_a_time() {
        let mut state = IncidentState::Open;
        let mut seen = vec![state];
        while let Some(next) = state.next() {
            assert!(
                next.to_db() == state.to_db() + 1,
                "{next:?} after {state:?}"
            );
            state = next;
            seen.push(state);
        }
        assert_eq!(seen, IncidentState::ALL);
    }

    #[test]
    fn standing_follows_need_to_know() {
        let who = |roles: &[Role]| Principal {
            subject: "alice".into(),
            roles: roles.iter().copied().collect(),
        };
        let responder = who(&[Role::Responder]);
        assert_eq!(Standing::of(&responder, None, false), Standing::Stranger);
        assert_eq!(
            Standing::of(&responder, Some("bob"), true),
            Standing::Listed
        );
        assert_eq!(
            Standing::of(&responder, Some("alice"), true),
            Standing::Officer
        );
        assert_eq!(
            Standing::of(&who(&[Role::Service]), None, false),
            Standing::Service
        );
        assert!(!Standing::Service.changes() && Standing::Service.sees());
        assert!(!Standing::Listed.changes() && Standing::Listed.acts());
        assert_eq!(
            Standing::of(&who(&[Role::SecurityAdvisor]), None, false),
            Standing::Advisor
        );
    }
}
