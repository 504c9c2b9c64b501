//! The incident register's domain (policy 14.2): the lifecycle and its one legal move
//! from each state, the actions log's kinds, an incident's flags, and who may see and
//! change an incident (need to know, 14.2.2).

use custos_kit::auth::{Principal, Role};
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
});

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
