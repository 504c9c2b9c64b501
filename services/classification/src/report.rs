//! What classification knows of a report: the routing facts of intake's events. The
//! enums are classification's own on its API (so that it versions independently of
//! intake's), and read from intake's events by number, which both share.

use custos_proto::classification::v1 as pb;

custos_kit::wire_enum!(Kind, pb::ReportKind, "EVENT or WEAKNESS", {
    Event = 1 => Event,
    Weakness = 2 => Weakness,
});

impl From<Kind> for custos_taxonomy::Kind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Event => custos_taxonomy::Kind::Event,
            Kind::Weakness => custos_taxonomy::Kind::Weakness,
        }
    }
}

custos_kit::wire_enum!(Medium, pb::ReportMedium, "ELECTRONIC or PAPER", {
    Electronic = 1 => Electronic,
    Paper = 2 => Paper,
});

/// Where a report stands in triage. Stored values: never renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriageState {
    /// Queued, waiting for a security advisor's assessment.
    AwaitingAssessment,
    /// Assessed: watched, not an incident.
    Monitoring,
    /// Assessed: dismissed.
    Dismissed,
    /// Assessed: raised as, or linked to, an incident.
    Incident,
}

impl custos_kit::storage::DbEnum for TriageState {
    const NAME: &'static str = "TriageState";

    fn to_db(self) -> i16 {
        match self {
            TriageState::AwaitingAssessment => 1,
            TriageState::Monitoring => 2,
            TriageState::Dismissed => 3,
            TriageState::Incident => 4,
        }
    }

    fn from_db(n: i16) -> Option<Self> {
        match n {
            1 => Some(TriageState::AwaitingAssessment),
            2 => Some(TriageState::Monitoring),
            3 => Some(TriageState::Dismissed),
            4 => Some(TriageState::Incident),
            _ => None,
        }
    }
}

custos_kit::db_enum!(TriageState);
