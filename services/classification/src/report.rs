//! What classification knows of a report: the routing facts of intake's events. The
//! enums are classification's own on its API (so that it versions independently of
//! intake's), and read from intake's events by number, which both share.

use custos_proto::classification::v1 as pb;

custos_kit::wire_enum!(Kind, pb::ReportKind, "EVENT or WEAKNESS", {
    Event = 1 => Event,
    Weakness = 2 => Weakness,
});

custos_kit::wire_enum!(Medium, pb::ReportMedium, "ELECTRONIC or PAPER", {
    Electronic = 1 => Electronic,
    Paper = 2 => Paper,
});

/// Where a report stands in triage. Stored values: never renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriageState {
    /// Queued, waiting for a security advisor's assessment.
    AwaitingAssessment,
}

impl custos_kit::storage::DbEnum for TriageState {
    const NAME: &'static str = "TriageState";

    fn to_db(self) -> i16 {
        match self {
            TriageState::AwaitingAssessment => 1,
        }
    }

    fn from_db(n: i16) -> Option<Self> {
        match n {
            1 => Some(TriageState::AwaitingAssessment),
            _ => None,
        }
    }
}

custos_kit::db_enum!(TriageState);
